//! Code generated from `proto/scopepilot/v1/*.proto` (package `scopepilot.v1`).

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("scopepilot.v1");

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("scopepilot_descriptor");
