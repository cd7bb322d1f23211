//! `PassthroughStage`: emits its input unchanged, sharing the same buffer (no copy).

use super::stage::{Emitter, Stage, StageError};
use crate::frame::Frame;

/// A stage that forwards frames as they are.
#[derive(Debug, Default)]
pub struct PassthroughStage;

impl Stage for PassthroughStage {
    fn kind(&self) -> &'static str {
        "passthrough"
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        out.emit(input.clone());
        Ok(())
    }
}
