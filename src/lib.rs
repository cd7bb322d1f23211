//! scopepilot: a microscope-side real-time acquisition daemon.
//!
//! Data flows one way:
//!
//! ```text
//! source (camera thread) -> ingest ring (lock-free SPSC) -> pipeline stages -> subscribers
//!                                                           |              \-> gRPC API
//!                                          detect stages -> events -> rules -> actions
//! ```
//!
//! - [`frame`]: frames and the recycled [`frame::FramePool`] (no per-frame allocation).
//! - [`ring`]: the lock-free ingest ring with counted overflow policies.
//! - [`source`]: simulated, replay and push sources behind [`source::FrameSource`].
//! - [`pipeline`]: stages on their own threads behind bounded, counted queues.
//! - [`sink`]: live subscribers and preview encoding.
//! - [`inference`]: ONNX Runtime, model packages (bioimage.io) and the model catalog.
//! - [`events`]: what detect stages see; [`rules`]: what the microscope does about it
//!   (event-triggered acquisition: interval changes, pre/post-trigger capture, actions for
//!   control software).
//! - [`daemon`]: the acquisition state machine; [`api`]: the gRPC layer over it;
//!   [`web`]: the browser preview page and Prometheus [`metrics`] over it.
//! - [`config`]: strict TOML configuration; [`app`]: what the `scopepilot` binary runs.
//! - [`hostile_input`]: every parser fed arbitrary bytes, for the fuzz targets in `fuzz/` and
//!   their regression tests.

#![warn(missing_docs)]

pub mod access;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod frame;
pub mod hostile_input;
pub mod inference;
pub mod install;
pub mod latency;
pub mod metrics;
pub mod pipeline;
pub mod proto;
pub mod ring;
pub mod rules;
pub mod sink;
pub mod source;
pub mod thread_nice;
pub mod tls;
pub mod web;
