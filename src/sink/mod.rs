//! Sinks: where frames leave the pipeline. Live subscribers (gRPC streams) with the preview
//! encoder they use and the encodings they share, the newest-frame slot of the browser
//! preview, and recording to OME-Zarr.

pub mod latest;
pub mod preview;
pub mod record;
pub mod shared_encoding;
pub mod subscribers;

/// Something attached to a stream's hub that takes every published frame. `offer` runs on the
/// publishing (camera-side or stage) thread: it must never block and never fail loudly.
pub trait FrameSink: Send + Sync {
    /// Take (or refuse, counting it) one frame.
    fn offer(&self, frame: &crate::frame::Frame);
}
