//! Events: what detect stages see in frames, as typed records, and the channel that carries
//! each frame's detection result to the rule engine.
//!
//! A detect stage sends one [`Detection`] per frame (with zero or more [`Event`]s and a
//! frame-level signal for hysteresis rules) without ever waiting: the channel is bounded and
//! a full channel drops the detection and counts it.

pub mod fanout;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoundingBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl BoundingBox {
    /// Whether the point (`x`, `y`) lies inside.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x as f32
            && y >= self.y as f32
            && x < (self.x + self.width) as f32
            && y < (self.y + self.height) as f32
    }

    /// The box clipped to a `width` x `height` frame (empty when it lies outside).
    pub fn clipped(&self, width: u32, height: u32) -> Self {
        let x = self.x.min(width);
        let y = self.y.min(height);
        Self {
            x,
            y,
            width: self.width.min(width - x),
            height: self.height.min(height - y),
        }
    }
}

/// Something a detector saw in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique and increasing within a daemon run; set when the engine publishes it.
    pub id: u64,
    /// Event kind (`division`, `roi_mean`, `activity`, `object_count`, ...).
    pub kind: Arc<str>,
    /// Name of the detect stage (or `simulator` for ground truth).
    pub detector: Arc<str>,
    /// Stream the detector reads.
    pub stream: Arc<str>,
    /// Frame the event is in.
    pub frame_number: u64,
    /// That frame's camera timestamp.
    pub timestamp_ns: u64,
    /// Centre, pixels.
    pub x: f32,
    /// Centre, pixels.
    pub y: f32,
    /// Extent.
    pub bbox: BoundingBox,
    /// Detector score.
    pub score: f32,
    /// Detector-specific numbers.
    pub values: Vec<(&'static str, f64)>,
    /// When the frame entered scopepilot.
    pub frame_arrival: Instant,
    /// When detection finished.
    pub detected: Instant,
    /// The simulator's ground truth rather than a detection.
    pub ground_truth: bool,
}

/// One detector's result for one frame.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Name of the detect stage.
    pub detector: Arc<str>,
    /// The frame.
    pub frame_number: u64,
    /// Frame-level signal for hysteresis rules: the highest model score, the ROI mean, the
    /// difference energy, the object count.
    pub signal: f32,
    /// Events in this frame (most frames have none).
    pub events: Vec<Event>,
    /// When the frame entered scopepilot.
    pub frame_arrival: Instant,
    /// When detection finished.
    pub detected: Instant,
}

/// What reaches the rule engine.
#[derive(Debug, Clone)]
pub enum EngineInput {
    /// A detect stage's result for one frame.
    Detection(Detection),
    /// Ground truth from the simulated camera.
    GroundTruth(Event),
}

/// Capacity of the channel from detectors to the rule engine.
pub const ENGINE_QUEUE: usize = 1024;

/// The sending end used by detect stages and the simulator: never blocks; a full queue drops
/// the input and counts it.
#[derive(Debug, Clone)]
pub struct EngineSender {
    tx: Sender<EngineInput>,
    dropped: Arc<AtomicU64>,
}

impl EngineSender {
    /// Send without waiting.
    pub fn send(&self, input: EngineInput) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(input) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "rule engine queue full; detections dropped");
            }
        }
        // Disconnected: the engine is gone (shutdown); nothing to tell.
    }

    /// Detections dropped because the engine's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A bounded channel to the rule engine.
pub fn engine_channel() -> (EngineSender, Receiver<EngineInput>) {
    let (tx, rx) = crossbeam_channel::bounded(ENGINE_QUEUE);
    (
        EngineSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}
