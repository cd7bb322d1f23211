//! The `Stage` trait: one processing step of the pipeline, run on a thread of its own.

use std::sync::atomic::Ordering;

use super::output::Output;
use super::stats::StageStats;
use crate::frame::{Frame, FramePool, FrameSpec, FrameWriter, PixelType, Pixels};

/// A frame a stage could not process. The frame is skipped and counted; the stage goes on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StageError(pub String);

/// A processing step: takes frames in, emits zero or more frames per input.
pub trait Stage: Send {
    /// Short name of the stage kind (`gaussian`, ...).
    fn kind(&self) -> &'static str;

    /// The model slot of a stage that runs a replaceable model (none by default).
    fn model_slot(&self) -> Option<std::sync::Arc<super::denoise::ModelSlot>> {
        None
    }

    /// Process one input frame, emitting results through `out`.
    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError>;
}

/// Where a stage emits its frames: counts them, records their latency, fans them out.
pub struct Emitter<'a> {
    output: &'a Output,
    stats: &'a StageStats,
}

impl<'a> Emitter<'a> {
    /// Count an interval left without generated frames because input frames were missing.
    pub fn count_gap_skipped(&mut self) {
        self.stats.gaps_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// An emitter publishing to `output` and counting in `stats`.
    pub fn new(output: &'a Output, stats: &'a StageStats) -> Self {
        Self { output, stats }
    }

    /// Emit a frame downstream and to subscribers.
    pub fn emit(&mut self, frame: Frame) {
        self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
        if frame.meta().synthetic {
            self.stats.synthetic_out.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.latency.record(frame.meta().arrival.elapsed());
        self.output.publish(frame);
    }
}

/// The f32 output of a stage for one input frame: a slot from the stage's pool (made, or
/// remade when the input format changes) carrying the input's metadata.
pub struct F32Output<'a> {
    writer: FrameWriter<'a>,
}

impl<'a> F32Output<'a> {
    /// Take a slot for `input`'s shape from `pool` (of `frames` buffers), or say why not.
    pub fn acquire(
        pool: &'a mut Option<FramePool>,
        input: &Frame,
        frames: usize,
    ) -> Result<Self, StageError> {
        let spec = input.spec();
        let out_spec = FrameSpec::new(spec.width, spec.height, PixelType::F32);
        let mut writer = acquire_slot(pool, out_spec, frames, input.meta().frame_number)?;
        *writer.meta_mut() = *input.meta();
        Ok(Self { writer })
    }

    /// The output pixels.
    pub fn pixels(&mut self) -> &mut [f32] {
        match self.writer.pixels_mut() {
            Pixels::F32(v) => v,
            _ => unreachable!("the pool is made with f32 slots"),
        }
    }

    /// Finish and share the frame.
    pub fn publish(self) -> Frame {
        self.writer.publish()
    }
}

/// A slot of `spec` from a stage's output `pool` of `frames` buffers (made, or remade when the
/// format changes), or why there is none (every buffer is still in use downstream).
pub fn acquire_slot(
    pool: &mut Option<FramePool>,
    spec: FrameSpec,
    frames: usize,
    frame_number: u64,
) -> Result<FrameWriter<'_>, StageError> {
    if pool.as_ref().is_none_or(|p| p.spec() != spec) {
        *pool = Some(FramePool::new(spec, frames / 2, frames));
    }
    let pool = pool.as_mut().expect("pool just set");
    let allocated = pool.allocated();
    pool.acquire().ok_or_else(|| {
        StageError(format!(
            "all {allocated} output buffers are in use downstream; frame {frame_number} skipped"
        ))
    })
}
