//! The `push` source: frames sent by acquisition software over gRPC (`PushFrames`).
//!
//! Every pushed frame is validated (dimensions, pixel type, byte count, the configured size if
//! any) before it is copied into a pooled buffer and queued in the ingest ring; a bad frame is
//! rejected with a message and nothing else is affected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::frame::{FramePool, FrameSpec, PixelType, Pixels};
use crate::ring::{IngestProducer, PushOutcome};

/// Largest width or height accepted.
pub const MAX_SIDE: u32 = 16_384;

/// Settings of the push source (`[source.push]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Required frame width (0 = any).
    pub width: u32,
    /// Required frame height (0 = any).
    pub height: u32,
    /// Buffers in the push frame pool.
    pub pool_frames: usize,
    /// Largest frame accepted, in pixels.
    pub max_pixels: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            width: 0,
            height: 0,
            pool_frames: 32,
            max_pixels: 64 << 20,
        }
    }
}

/// One frame as received from a client.
#[derive(Debug, Clone, Copy)]
pub struct PushedFrame<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel type of `data`.
    pub pixel_type: PixelType,
    /// The client's frame number.
    pub frame_number: u64,
    /// The client's timestamp, nanoseconds.
    pub timestamp_ns: u64,
    /// Exposure in microseconds (0 = unknown).
    pub exposure_us: u32,
    /// Little-endian pixel bytes, row-major.
    pub data: &'a [u8],
}

/// Counters of the push source.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Frames accepted and queued.
    pub accepted: AtomicU64,
    /// Frames rejected as invalid.
    pub rejected: AtomicU64,
    /// Valid frames lost because no buffer was free.
    pub lost_no_buffer: AtomicU64,
    /// Format of the frames being pushed, once the first valid one arrived.
    pub format: std::sync::Mutex<Option<FrameSpec>>,
}

impl PushStats {
    /// Format of the frames being pushed, if any arrived.
    pub fn format(&self) -> Option<FrameSpec> {
        *self.format.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving end of pushed frames, feeding the ingest ring.
pub struct PushInput {
    config: PushConfig,
    pool: Option<FramePool>,
    ring: IngestProducer,
    stats: Arc<PushStats>,
}

/// What became of a valid pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushResult {
    /// Queued (possibly after evicting an older frame; the ring counts that).
    Queued,
    /// Dropped by the ring's overflow policy.
    DroppedByRing,
    /// Lost: every buffer was still in use downstream.
    LostNoBuffer,
}

impl PushInput {
    /// A push input feeding `ring`.
    pub fn new(config: PushConfig, ring: IngestProducer) -> Self {
        Self {
            config,
            pool: None,
            ring,
            stats: Arc::new(PushStats::default()),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Arc<PushStats> {
        self.stats.clone()
    }

    /// Check a pushed frame; the error says what is wrong.
    pub fn validate(&self, f: &PushedFrame<'_>) -> Result<FrameSpec, String> {
        let n = f.frame_number;
        if f.width == 0 || f.height == 0 {
            return Err(format!(
                "frame {n}: width and height must be non-zero, got {}x{}",
                f.width, f.height
            ));
        }
        if f.width > MAX_SIDE || f.height > MAX_SIDE {
            return Err(format!(
                "frame {n}: {}x{} exceeds the maximum side of {MAX_SIDE} pixels",
                f.width, f.height
            ));
        }
        let spec = FrameSpec::new(f.width, f.height, f.pixel_type);
        if spec.pixel_count() as u64 > self.config.max_pixels {
            return Err(format!(
                "frame {n}: {} pixels exceeds source.push.max_pixels = {}",
                spec.pixel_count(),
                self.config.max_pixels
            ));
        }
        let c = &self.config;
        if (c.width != 0 && c.width != f.width) || (c.height != 0 && c.height != f.height) {
            return Err(format!(
                "frame {n}: size {}x{} does not match the configured {}x{}",
                f.width, f.height, c.width, c.height
            ));
        }
        if f.data.len() != spec.byte_len() {
            return Err(format!(
                "frame {n}: data has {} bytes, expected {} x {} x {} bytes ({}) = {}",
                f.data.len(),
                f.width,
                f.height,
                f.pixel_type.bytes(),
                f.pixel_type,
                spec.byte_len()
            ));
        }
        Ok(spec)
    }

    /// Count a frame the caller rejected before it could be decoded (e.g. unknown pixel
    /// type), so that every refused frame shows in the counters.
    pub fn count_rejected(&self) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Validate a frame and queue it. Never blocks.
    pub fn push(&mut self, f: &PushedFrame<'_>) -> Result<PushResult, String> {
        let spec = match self.validate(f) {
            Ok(s) => s,
            Err(e) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        if self.pool.as_ref().is_none_or(|p| p.spec() != spec) {
            tracing::info!(%spec, "push source frame format set");
            *self.stats.format.lock().unwrap_or_else(|e| e.into_inner()) = Some(spec);
            let n = self.config.pool_frames.max(2);
            self.pool = Some(FramePool::new(spec, n / 2, n));
        }
        let pool = self.pool.as_mut().expect("pool just set");
        let Some(mut writer) = pool.acquire() else {
            self.stats.lost_no_buffer.fetch_add(1, Ordering::Relaxed);
            return Ok(PushResult::LostNoBuffer);
        };
        let (meta, pixels) = writer.parts_mut();
        meta.frame_number = f.frame_number;
        meta.camera_timestamp_ns = f.timestamp_ns;
        meta.exposure_us = f.exposure_us;
        meta.synthetic = false;
        match pixels {
            Pixels::U8(dst) => dst.copy_from_slice(f.data),
            Pixels::U16(dst) => dst
                .iter_mut()
                .zip(f.data.chunks_exact(2))
                .for_each(|(d, b)| *d = u16::from_le_bytes([b[0], b[1]])),
            Pixels::F32(dst) => dst
                .iter_mut()
                .zip(f.data.chunks_exact(4))
                .for_each(|(d, b)| *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(match self.ring.push(writer.publish_arrived()) {
            PushOutcome::DroppedNewest => PushResult::DroppedByRing,
            _ => PushResult::Queued,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{OverflowPolicy, ingest_ring};

    fn frame(data: &[u8], w: u32, h: u32, pt: PixelType) -> PushedFrame<'_> {
        PushedFrame {
            width: w,
            height: h,
            pixel_type: pt,
            frame_number: 3,
            timestamp_ns: 0,
            exposure_us: 0,
            data,
        }
    }

    #[test]
    fn valid_frames_are_decoded_little_endian_into_the_ring() {
        let (prod, cons) = ingest_ring(4, OverflowPolicy::DropNewest);
        let mut input = PushInput::new(PushConfig::default(), prod);
        let data = [0x34, 0x12, 0xff, 0xff];
        assert_eq!(
            input.push(&frame(&data, 2, 1, PixelType::U16)),
            Ok(PushResult::Queued)
        );
        let f = cons.try_pop().unwrap();
        assert_eq!(f.pixels(), &Pixels::U16(vec![0x1234, 0xffff]));
        assert_eq!(f.meta().frame_number, 3);
    }

    #[test]
    fn invalid_frames_are_rejected_with_a_reason_and_counted() {
        let (prod, cons) = ingest_ring(4, OverflowPolicy::DropNewest);
        let config = PushConfig {
            width: 2,
            height: 2,
            ..PushConfig::default()
        };
        let mut input = PushInput::new(config, prod);
        let cases: [(PushedFrame<'_>, &str); 4] = [
            (
                frame(&[0; 7], 2, 2, PixelType::U16),
                "expected 2 x 2 x 2 bytes",
            ),
            (frame(&[], 0, 2, PixelType::U8), "non-zero"),
            (frame(&[], 100_000, 2, PixelType::U8), "maximum side"),
            (
                frame(&[0; 6], 3, 2, PixelType::U8),
                "does not match the configured 2x2",
            ),
        ];
        for (f, want) in cases {
            let err = input.push(&f).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        assert_eq!(input.stats().rejected.load(Ordering::Relaxed), 4);
        assert!(cons.is_empty());
    }
}
