//! Frames: pixels plus the metadata that travels with them.
//!
//! A [`Frame`] is a cheap, reference-counted handle to an immutable image slot owned by a
//! [`FramePool`]. Cloning a frame never copies pixels; when the last handle is dropped the slot
//! becomes free for the pool to reuse. Writers get temporary exclusive access through a
//! [`FrameWriter`] and publish the result as a [`Frame`].

mod pool;

pub use pool::{FramePool, FramePoolStats, FrameWriter};

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Pixel representation of a frame.
///
/// Cameras deliver `U8` or `U16`; stages inside the pipeline compute in `F32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelType {
    /// Unsigned 8-bit mono.
    U8,
    /// Unsigned 16-bit mono (sCMOS cameras).
    U16,
    /// 32-bit float mono, used inside the pipeline.
    F32,
}

impl PixelType {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            PixelType::U8 => 1,
            PixelType::U16 => 2,
            PixelType::F32 => 4,
        }
    }

    /// Lower-case name used in config files and logs.
    pub fn name(self) -> &'static str {
        match self {
            PixelType::U8 => "u8",
            PixelType::U16 => "u16",
            PixelType::F32 => "f32",
        }
    }
}

impl fmt::Display for PixelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Shape and pixel type of a frame: what a pool allocates and a stage expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel representation.
    pub pixel_type: PixelType,
}

impl FrameSpec {
    /// Create a spec.
    pub fn new(width: u32, height: u32, pixel_type: PixelType) -> Self {
        Self {
            width,
            height,
            pixel_type,
        }
    }

    /// Number of pixels.
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Size of the pixel data in bytes.
    pub fn byte_len(&self) -> usize {
        self.pixel_count() * self.pixel_type.bytes()
    }
}

impl fmt::Display for FrameSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} {}", self.width, self.height, self.pixel_type)
    }
}

/// Pixel storage of one frame slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// 8-bit pixels, row-major.
    U8(Vec<u8>),
    /// 16-bit pixels, row-major.
    U16(Vec<u16>),
    /// 32-bit float pixels, row-major.
    F32(Vec<f32>),
}

impl Pixels {
    /// Zero-filled storage for `spec`.
    pub fn zeroed(spec: FrameSpec) -> Self {
        let n = spec.pixel_count();
        match spec.pixel_type {
            PixelType::U8 => Pixels::U8(vec![0; n]),
            PixelType::U16 => Pixels::U16(vec![0; n]),
            PixelType::F32 => Pixels::F32(vec![0.0; n]),
        }
    }

    /// The pixel type stored.
    pub fn pixel_type(&self) -> PixelType {
        match self {
            Pixels::U8(_) => PixelType::U8,
            Pixels::U16(_) => PixelType::U16,
            Pixels::F32(_) => PixelType::F32,
        }
    }

    /// Number of pixels stored.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::U16(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// Make this a copy of `src`, reusing this storage; false (nothing changed) when the
    /// pixel types differ.
    pub fn copy_from(&mut self, src: &Pixels) -> bool {
        match (self, src) {
            (Pixels::U8(d), Pixels::U8(s)) => {
                d.clear();
                d.extend_from_slice(s);
            }
            (Pixels::U16(d), Pixels::U16(s)) => {
                d.clear();
                d.extend_from_slice(s);
            }
            (Pixels::F32(d), Pixels::F32(s)) => {
                d.clear();
                d.extend_from_slice(s);
            }
            _ => return false,
        }
        true
    }

    /// True when no pixels are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixel `i` as `f32` (for generic, non-hot-path code such as previews and tests).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            Pixels::U8(v) => v[i] as f32,
            Pixels::U16(v) => v[i] as f32,
            Pixels::F32(v) => v[i],
        }
    }

    /// Copy the pixels into `out` as `f32`, reusing its allocation.
    pub fn copy_to_f32(&self, out: &mut Vec<f32>) {
        out.clear();
        match self {
            Pixels::U8(v) => out.extend(v.iter().map(|&p| p as f32)),
            Pixels::U16(v) => out.extend(v.iter().map(|&p| p as f32)),
            Pixels::F32(v) => out.extend_from_slice(v),
        }
    }

    /// Write the pixels as f32 into `out`, which must hold exactly as many values.
    pub fn convert_into_f32(&self, out: &mut [f32]) {
        match self {
            Pixels::U8(v) => out.iter_mut().zip(v).for_each(|(o, &p)| *o = p as f32),
            Pixels::U16(v) => out.iter_mut().zip(v).for_each(|(o, &p)| *o = p as f32),
            Pixels::F32(v) => out.copy_from_slice(v),
        }
    }

    /// Set the pixels from `values` (exactly as many), rounding to the nearest integer (halves
    /// up) and clamping to the type's range for integer pixels (NaN becomes 0). No libm call
    /// per pixel: the loops vectorise.
    pub fn store_f32(&mut self, values: &[f32]) {
        match self {
            Pixels::U8(v) => v
                .iter_mut()
                .zip(values)
                .for_each(|(p, &x)| *p = (x.clamp(0.0, u8::MAX as f32) + 0.5) as u8),
            Pixels::U16(v) => v
                .iter_mut()
                .zip(values)
                .for_each(|(p, &x)| *p = (x.clamp(0.0, u16::MAX as f32) + 0.5) as u16),
            Pixels::F32(v) => v.copy_from_slice(values),
        }
    }

    /// Append the pixels to `out` as little-endian bytes (the wire format of the API).
    pub fn extend_le_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Pixels::U8(v) => out.extend_from_slice(v),
            Pixels::U16(v) => {
                out.reserve(v.len() * 2);
                v.iter()
                    .for_each(|p| out.extend_from_slice(&p.to_le_bytes()));
            }
            Pixels::F32(v) => {
                out.reserve(v.len() * 4);
                v.iter()
                    .for_each(|p| out.extend_from_slice(&p.to_le_bytes()));
            }
        }
    }
}

/// Per-frame metadata: where the frame came from and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMeta {
    /// Frame number assigned by the source (camera frame counter); gaps mean frames the
    /// source itself lost before they reached scopepilot.
    pub frame_number: u64,
    /// Camera (or client) timestamp in nanoseconds, in the source's own time base.
    pub camera_timestamp_ns: u64,
    /// Monotonic time at which the frame entered scopepilot.
    pub arrival: Instant,
    /// Exposure time in microseconds, when the source knows it (0 = unknown).
    pub exposure_us: u32,
    /// True for frames generated by the pipeline (e.g. interpolated) rather than measured.
    pub synthetic: bool,
}

impl FrameMeta {
    /// Metadata for a frame numbered `frame_number` that arrives now.
    pub fn arriving_now(frame_number: u64, camera_timestamp_ns: u64) -> Self {
        Self {
            frame_number,
            camera_timestamp_ns,
            arrival: Instant::now(),
            exposure_us: 0,
            synthetic: false,
        }
    }
}

/// A 1x1 frame numbered `n`, for unit tests of queues and rings.
#[cfg(test)]
pub(crate) fn tiny_test_frame(n: u64) -> Frame {
    let spec = FrameSpec::new(1, 1, PixelType::U8);
    Frame::standalone(spec, FrameMeta::arriving_now(n, 0), Pixels::U8(vec![0]))
}

/// The contents of a pool slot.
#[derive(Debug)]
pub(crate) struct FrameSlot {
    pub(crate) spec: FrameSpec,
    pub(crate) meta: FrameMeta,
    pub(crate) pixels: Pixels,
    /// Set from [`next_serial`] each time the slot is published.
    pub(crate) serial: u64,
}

/// A number no other frame published in this process has had (pool slots are reused, so
/// neither the buffer's address nor the metadata identify a frame).
pub(crate) fn next_serial() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A shared, immutable frame. Cloning is a reference-count increment.
#[derive(Debug, Clone)]
pub struct Frame(Arc<FrameSlot>);

impl Frame {
    /// Shape and pixel type.
    pub fn spec(&self) -> FrameSpec {
        self.0.spec
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.0.spec.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.0.spec.height
    }

    /// Metadata.
    pub fn meta(&self) -> &FrameMeta {
        &self.0.meta
    }

    /// Pixel data.
    pub fn pixels(&self) -> &Pixels {
        &self.0.pixels
    }

    /// A number unique to this published frame within the process: two handles with the
    /// same serial are the same frame, even after its buffer has been recycled.
    pub fn serial(&self) -> u64 {
        self.0.serial
    }

    /// True when both handles refer to the same pixel storage (no copy was made).
    pub fn same_buffer(&self, other: &Frame) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// A frame that owns its own storage, outside any pool (tests, one-off frames).
    pub fn standalone(spec: FrameSpec, meta: FrameMeta, pixels: Pixels) -> Self {
        debug_assert_eq!(pixels.len(), spec.pixel_count());
        Frame(Arc::new(FrameSlot {
            spec,
            meta,
            pixels,
            serial: next_serial(),
        }))
    }
}
