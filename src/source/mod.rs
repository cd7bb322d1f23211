//! Sources: where frames come from.
//!
//! Each source is one small type behind the [`FrameSource`] trait, in a file of its own:
//! [`simulated`] (a calibrated fluorescence microscope simulator), [`replay`] (TIFF stacks) and
//! [`push`] (frames sent over gRPC by acquisition software) and [`genicam`] (GigE Vision /
//! USB3 Vision cameras through Aravis, cargo feature `genicam`). Pull sources run on a dedicated
//! camera thread ([`runner`]) that hands their frames to the ingest ring.

pub mod camera_control;
pub mod genicam;
pub mod pacer;
pub mod push;
pub mod replay;
pub mod runner;
pub mod simulated;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::frame::{Frame, FramePool, FrameSpec};

/// Outcome of one [`FrameSource::capture`] call.
#[derive(Debug)]
pub enum Capture {
    /// A new frame.
    Frame(Frame),
    /// The source exposed a frame but no buffer was free, so it was lost (and must be counted).
    Lost {
        /// Number of the lost frame.
        frame_number: u64,
    },
    /// Nothing yet (the next frame is not due); call again.
    Idle,
    /// The source has no more frames (e.g. a replay without looping).
    End,
}

/// Errors a source can raise when opened or while capturing.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's settings are unusable.
    #[error("{0}")]
    Config(String),
    /// Reading the source's input failed.
    #[error("{path}: {problem}")]
    Input {
        /// The file or device.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

/// A pull source of frames: a camera, a simulator, a file.
pub trait FrameSource: Send {
    /// Short name of the source kind (`simulated`, `replay`, ...).
    fn kind(&self) -> &'static str;

    /// Shape and pixel type of the frames it produces.
    fn spec(&self) -> FrameSpec;

    /// Wait (briefly) for the next frame and write it into a buffer from `pool`.
    ///
    /// Implementations return [`Capture::Idle`] instead of sleeping for long, so that the
    /// camera thread can notice a stop request within a few milliseconds.
    fn capture(&mut self, pool: &mut FramePool) -> Result<Capture, SourceError>;

    /// Frame slots missed because the source could not keep its frame rate (0 for sources
    /// that do not pace themselves).
    fn late_frames(&self) -> u64 {
        0
    }

    /// Frames the source itself lost before they reached scopepilot (cameras: frame-id gaps
    /// and incomplete buffers), as running totals; zero for sources that cannot lose any.
    fn losses(&self) -> SourceLosses {
        SourceLosses::default()
    }

    /// A handle to change exposure, gain, region or binning while acquiring; `None` for
    /// sources without camera settings.
    fn camera_control(&self) -> Option<camera_control::CameraControl> {
        None
    }
}

/// Frames a camera lost on its side, before any scopepilot buffer was involved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceLosses {
    /// Frame numbers that never arrived (gaps in the camera's frame ids).
    pub missing: u64,
    /// Frames that arrived incomplete (missing packets, timeouts) and were discarded.
    pub incomplete: u64,
}

/// The frame interval of a running source, changeable from any thread while it runs.
#[derive(Debug)]
pub struct FrameInterval {
    nanos: AtomicU64,
}

impl FrameInterval {
    /// Shortest interval accepted (10 kHz).
    pub const MIN: Duration = Duration::from_micros(100);
    /// Longest interval accepted (one hour).
    pub const MAX: Duration = Duration::from_secs(3600);

    /// A shared interval.
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            nanos: AtomicU64::new(interval.as_nanos() as u64),
        })
    }

    /// An interval from a frame rate in Hz.
    pub fn from_rate_hz(rate_hz: f64) -> Arc<Self> {
        Self::new(Duration::from_secs_f64(1.0 / rate_hz))
    }

    /// Current interval.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// Whether `interval` is in the supported range, and if not, why.
    pub fn check(interval: Duration) -> Result<(), String> {
        if !(Self::MIN..=Self::MAX).contains(&interval) {
            return Err(format!(
                "frame interval {:?} is outside the supported range {:?} to {:?}",
                interval,
                Self::MIN,
                Self::MAX
            ));
        }
        Ok(())
    }

    /// Change the interval; takes effect from the next frame.
    pub fn set(&self, interval: Duration) -> Result<(), String> {
        Self::check(interval)?;
        self.nanos
            .store(interval.as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }
}
