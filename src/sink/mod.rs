//! Sinks: where frames leave the pipeline. Today: live subscribers (gRPC streams) and the
//! preview encoder they use.

pub mod preview;
pub mod subscribers;
