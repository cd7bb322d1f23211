//! Preview encoding for subscribers: optional block-average downsampling and an optional 8-bit
//! auto-contrast rendering (percentile window). Runs on the subscriber's own thread, never on
//! the pipeline's.

use crate::frame::{Frame, PixelType, Pixels};

/// How a subscriber wants its frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreviewOptions {
    /// Block-average over `downsample` x `downsample` pixels (1 = full resolution).
    pub downsample: u32,
    /// Render to 8 bits with an auto-contrast window instead of sending the data.
    pub eight_bit: bool,
    /// Lower percentile of the auto-contrast window (0..100).
    pub low_percentile: f32,
    /// Upper percentile of the auto-contrast window (0..100).
    pub high_percentile: f32,
    /// A fixed display window (min, max) in pixel units instead of the auto-contrast one.
    pub window: Option<(f32, f32)>,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        Self {
            downsample: 1,
            eight_bit: false,
            low_percentile: 0.1,
            high_percentile: 99.9,
            window: None,
        }
    }
}

/// An encoded frame ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFrame {
    /// Width after downsampling.
    pub width: u32,
    /// Height after downsampling.
    pub height: u32,
    /// Pixel type of `data`.
    pub pixel_type: PixelType,
    /// Little-endian pixel bytes, row-major; shared, not copied, when cloned.
    pub data: bytes::Bytes,
    /// Value mapped to 0 in an 8-bit preview (0 otherwise).
    pub display_min: f32,
    /// Value mapped to 255 in an 8-bit preview (0 otherwise).
    pub display_max: f32,
}

/// Encode `frame` for a subscriber.
pub fn encode(frame: &Frame, opts: &PreviewOptions) -> EncodedFrame {
    let k = opts.downsample.max(1);
    let (w, h) = (frame.width(), frame.height());
    if k == 1 && !opts.eight_bit {
        let mut data = Vec::with_capacity(frame.spec().byte_len());
        frame.pixels().extend_le_bytes(&mut data);
        return EncodedFrame {
            width: w,
            height: h,
            pixel_type: frame.spec().pixel_type,
            data: data.into(),
            display_min: 0.0,
            display_max: 0.0,
        };
    }
    let (ow, oh, values) = block_mean(frame.pixels(), w as usize, h as usize, k as usize);
    if opts.eight_bit {
        let (lo, hi) = opts.window.unwrap_or_else(|| {
            percentile_window(&values, opts.low_percentile, opts.high_percentile)
        });
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        let data: Vec<u8> = values
            .iter()
            .map(|v| ((v - lo) * scale).round().clamp(0.0, 255.0) as u8)
            .collect();
        return EncodedFrame {
            width: ow as u32,
            height: oh as u32,
            pixel_type: PixelType::U8,
            data: data.into(),
            display_min: lo,
            display_max: hi,
        };
    }
    let pixels = match frame.pixels() {
        Pixels::U8(_) => Pixels::U8(values.iter().map(|v| v.round() as u8).collect()),
        Pixels::U16(_) => Pixels::U16(values.iter().map(|v| v.round() as u16).collect()),
        Pixels::F32(_) => Pixels::F32(values),
    };
    let mut data = Vec::new();
    pixels.extend_le_bytes(&mut data);
    EncodedFrame {
        width: ow as u32,
        height: oh as u32,
        pixel_type: pixels.pixel_type(),
        data: data.into(),
        display_min: 0.0,
        display_max: 0.0,
    }
}

/// Block means over k x k tiles (partial tiles at the right and bottom edges are dropped).
fn block_mean(p: &Pixels, w: usize, h: usize, k: usize) -> (usize, usize, Vec<f32>) {
    let (ow, oh) = ((w / k).max(1), (h / k).max(1));
    let (kx, ky) = (k.min(w), k.min(h));
    let mut out = vec![0.0f32; ow * oh];
    for oy in 0..oh {
        for y in oy * ky..(oy + 1) * ky {
            for ox in 0..ow {
                let base = y * w + ox * kx;
                out[oy * ow + ox] += (base..base + kx).map(|i| p.get_f32(i)).sum::<f32>();
            }
        }
    }
    let norm = 1.0 / (kx * ky) as f32;
    out.iter_mut().for_each(|v| *v *= norm);
    (ow, oh, out)
}

/// The (low, high) percentiles of `values`, from a 4096-bin histogram.
pub fn percentile_window(values: &[f32], low: f32, high: f32) -> (f32, f32) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if min >= max {
        return (min.min(max), max.max(min));
    }
    const BINS: usize = 4096;
    let scale = (BINS - 1) as f32 / (max - min);
    let mut hist = vec![0u32; BINS];
    let mut n = 0u64;
    for &v in values.iter().filter(|v| v.is_finite()) {
        hist[((v - min) * scale) as usize] += 1;
        n += 1;
    }
    let at = |pct: f32| {
        let target = ((pct.clamp(0.0, 100.0) / 100.0) as f64 * n as f64)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0u64;
        for (b, c) in hist.iter().enumerate() {
            seen += *c as u64;
            if seen >= target {
                return min + b as f32 / scale;
            }
        }
        max
    };
    (at(low), at(high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMeta, FrameSpec};

    fn ramp(w: u32, h: u32) -> Frame {
        let px: Vec<u16> = (0..w * h).map(|i| (i * 6) as u16).collect();
        Frame::standalone(
            FrameSpec::new(w, h, PixelType::U16),
            FrameMeta::arriving_now(0, 0),
            Pixels::U16(px),
        )
    }

    #[test]
    fn full_data_is_little_endian_and_unchanged() {
        let f = ramp(4, 2);
        let e = encode(&f, &PreviewOptions::default());
        assert_eq!((e.width, e.height, e.pixel_type), (4, 2, PixelType::U16));
        assert_eq!(e.data.len(), 16);
        assert_eq!(u16::from_le_bytes([e.data[2], e.data[3]]), 6);
    }

    #[test]
    fn downsampling_averages_blocks() {
        let f = ramp(4, 4);
        let opts = PreviewOptions {
            downsample: 2,
            ..PreviewOptions::default()
        };
        let e = encode(&f, &opts);
        assert_eq!((e.width, e.height), (2, 2));
        // Top-left block holds 0, 6, 24, 30 -> mean 15.
        assert_eq!(u16::from_le_bytes([e.data[0], e.data[1]]), 15);
    }

    #[test]
    fn eight_bit_preview_spans_the_percentile_window() {
        let f = ramp(100, 100);
        let opts = PreviewOptions {
            eight_bit: true,
            low_percentile: 1.0,
            high_percentile: 99.0,
            ..PreviewOptions::default()
        };
        let e = encode(&f, &opts);
        assert_eq!(e.pixel_type, PixelType::U8);
        assert_eq!(e.data.len(), 100 * 100);
        assert_eq!(e.data[0], 0);
        assert_eq!(*e.data.last().unwrap(), 255);
        assert!(e.display_min > 0.0 && e.display_max < 59_994.0);
        let mid = e.data[5050];
        assert!((120..=135).contains(&mid), "mid-grey {mid}");
    }

    #[test]
    fn a_fixed_window_maps_min_to_black_and_max_to_white() {
        let f = ramp(100, 1); // 0, 6, ..., 594
        let opts = PreviewOptions {
            eight_bit: true,
            window: Some((60.0, 120.0)),
            ..PreviewOptions::default()
        };
        let e = encode(&f, &opts);
        assert_eq!((e.display_min, e.display_max), (60.0, 120.0));
        assert_eq!(&e.data[9..12], &[0, 0, 26]); // 54, 60, 66
        assert_eq!(&e.data[19..22], &[230, 255, 255]); // 114, 120, 126
    }
}
