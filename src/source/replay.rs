//! The `replay` source: plays a multi-page TIFF stack (8- or 16-bit grayscale) at a set rate,
//! optionally looping. The whole stack is decoded and checked when the source opens, so a
//! corrupt or unsupported file is rejected before acquisition starts, not halfway through.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};

use super::pacer::Pacer;
use super::{Capture, FrameInterval, FrameSource, SourceError};
use crate::frame::{FramePool, FrameSpec, PixelType, Pixels};

/// Settings of the replay source (`[source.replay]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The TIFF stack to play.
    pub path: PathBuf,
    /// Frames per second (changeable at run time).
    #[serde(default = "default_rate")]
    pub frame_rate_hz: f64,
    /// Start again at the first page after the last one.
    #[serde(default)]
    pub r#loop: bool,
    /// Refuse stacks larger than this once decoded, in MiB.
    #[serde(default = "default_max_mib")]
    pub max_mib: u64,
}

fn default_rate() -> f64 {
    10.0
}

fn default_max_mib() -> u64 {
    4096
}

/// Decoded pages of a TIFF stack.
#[derive(Debug, Clone)]
pub struct TiffStack {
    spec: FrameSpec,
    pages: Vec<Pixels>,
}

impl TiffStack {
    /// Decode every page of the TIFF at `path`.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, SourceError> {
        let err = |problem: String| SourceError::Input {
            path: path.display().to_string(),
            problem,
        };
        let file = std::fs::File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        Self::decode(BufReader::new(file), max_bytes).map_err(err)
    }

    /// Decode every page of a TIFF held in any seekable reader.
    pub fn decode<R: std::io::Read + std::io::Seek>(
        reader: R,
        max_bytes: u64,
    ) -> Result<Self, String> {
        let mut dec = Decoder::new(reader).map_err(|e| format!("not a readable TIFF: {e}"))?;
        let mut pages = Vec::new();
        let mut spec: Option<FrameSpec> = None;
        let mut total = 0u64;
        loop {
            let page = pages.len();
            let (w, h) = dec.dimensions().map_err(|e| format!("page {page}: {e}"))?;
            let pixel_type = match dec.colortype().map_err(|e| format!("page {page}: {e}"))? {
                ColorType::Gray(8) => PixelType::U8,
                ColorType::Gray(16) => PixelType::U16,
                other => {
                    return Err(format!(
                        "page {page}: pixel format {other:?} is not supported (replay reads 8- or 16-bit grayscale)"
                    ));
                }
            };
            let this = FrameSpec::new(w, h, pixel_type);
            if let Some(first) = spec
                && first != this
            {
                return Err(format!(
                    "page {page} is {this} but page 0 is {first}; all pages must match"
                ));
            }
            spec = Some(this);
            total += this.byte_len() as u64;
            if total > max_bytes {
                return Err(format!(
                    "stack exceeds the replay limit of {} MiB (raise source.replay.max_mib)",
                    max_bytes >> 20
                ));
            }
            let pixels = match dec.read_image().map_err(|e| format!("page {page}: {e}"))? {
                DecodingResult::U8(v) => Pixels::U8(v),
                DecodingResult::U16(v) => Pixels::U16(v),
                _ => return Err(format!("page {page}: unexpected sample format")),
            };
            if pixels.len() != this.pixel_count() {
                return Err(format!(
                    "page {page}: decoded {} pixels, expected {}",
                    pixels.len(),
                    this.pixel_count()
                ));
            }
            pages.push(pixels);
            if !dec.more_images() {
                break;
            }
            dec.next_image()
                .map_err(|e| format!("page {}: {e}", page + 1))?;
        }
        let spec = spec.ok_or("the TIFF has no pages")?;
        Ok(Self { spec, pages })
    }

    /// Shape and pixel type of every page.
    pub fn spec(&self) -> FrameSpec {
        self.spec
    }

    /// Number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// True when there are no pages (never, for a decoded stack).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Page `i`.
    pub fn page(&self, i: usize) -> &Pixels {
        &self.pages[i]
    }
}

/// The replay source.
#[derive(Debug)]
pub struct ReplaySource {
    stack: TiffStack,
    looping: bool,
    pacer: Pacer,
    next_frame_number: u64,
    time_ns: u64,
}

impl ReplaySource {
    /// Open and decode the stack in `config`.
    pub fn new(config: &ReplayConfig, interval: Arc<FrameInterval>) -> Result<Self, SourceError> {
        let stack = TiffStack::open(&config.path, config.max_mib << 20)?;
        Ok(Self::from_stack(stack, config.r#loop, interval))
    }

    /// Play an already decoded stack.
    pub fn from_stack(stack: TiffStack, looping: bool, interval: Arc<FrameInterval>) -> Self {
        Self {
            stack,
            looping,
            pacer: Pacer::new(interval),
            next_frame_number: 0,
            time_ns: 0,
        }
    }
}

impl FrameSource for ReplaySource {
    fn kind(&self) -> &'static str {
        "replay"
    }

    fn spec(&self) -> FrameSpec {
        self.stack.spec()
    }

    fn late_frames(&self) -> u64 {
        self.pacer.late()
    }

    fn capture(&mut self, pool: &mut FramePool) -> Result<Capture, SourceError> {
        let n = self.next_frame_number;
        let pages = self.stack.len() as u64;
        if n >= pages && !self.looping {
            return Ok(Capture::End);
        }
        let Some(dt) = self.pacer.wait() else {
            return Ok(Capture::Idle);
        };
        if n > 0 {
            self.time_ns += dt.as_nanos() as u64;
        }
        self.next_frame_number += 1;
        let Some(mut writer) = pool.acquire() else {
            return Ok(Capture::Lost { frame_number: n });
        };
        let (meta, pixels) = writer.parts_mut();
        meta.frame_number = n;
        meta.camera_timestamp_ns = self.time_ns;
        meta.synthetic = false;
        match (pixels, self.stack.page((n % pages) as usize)) {
            (Pixels::U8(dst), Pixels::U8(src)) => dst.copy_from_slice(src),
            (Pixels::U16(dst), Pixels::U16(src)) => dst.copy_from_slice(src),
            _ => {
                return Err(SourceError::Config(
                    "replay frame pool has the wrong pixel type".into(),
                ));
            }
        }
        Ok(Capture::Frame(writer.publish_arrived()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::time::Duration;
    use tiff::encoder::{TiffEncoder, colortype};

    fn tiff_u16(pages: &[Vec<u16>], w: u32, h: u32) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut enc = TiffEncoder::new(&mut buf).unwrap();
        for p in pages {
            enc.write_image::<colortype::Gray16>(w, h, p).unwrap();
        }
        buf.into_inner()
    }

    fn play(stack: TiffStack, looping: bool, n: usize) -> (Vec<u64>, Vec<f32>, bool) {
        let mut src = ReplaySource::from_stack(
            stack,
            looping,
            FrameInterval::new(Duration::from_micros(100)),
        );
        let mut pool = FramePool::new(src.spec(), 2, 2);
        let (mut numbers, mut first_pixels, mut ended) = (Vec::new(), Vec::new(), false);
        while numbers.len() < n {
            match src.capture(&mut pool).unwrap() {
                Capture::Frame(f) => {
                    numbers.push(f.meta().frame_number);
                    first_pixels.push(f.pixels().get_f32(0));
                }
                Capture::End => {
                    ended = true;
                    break;
                }
                _ => {}
            }
        }
        (numbers, first_pixels, ended)
    }

    #[test]
    fn plays_every_page_in_order_then_ends() {
        let pages: Vec<Vec<u16>> = (0..3).map(|k| vec![1000 * (k + 1); 6]).collect();
        let stack = TiffStack::decode(Cursor::new(tiff_u16(&pages, 3, 2)), 1 << 20).unwrap();
        assert_eq!(stack.spec(), FrameSpec::new(3, 2, PixelType::U16));
        let (numbers, px, ended) = play(stack, false, 10);
        assert_eq!(numbers, vec![0, 1, 2]);
        assert_eq!(px, vec![1000.0, 2000.0, 3000.0]);
        assert!(ended);
    }

    #[test]
    fn loops_with_continuous_frame_numbers() {
        let pages: Vec<Vec<u16>> = (0..2).map(|k| vec![k + 7; 4]).collect();
        let stack = TiffStack::decode(Cursor::new(tiff_u16(&pages, 2, 2)), 1 << 20).unwrap();
        let (numbers, px, ended) = play(stack, true, 5);
        assert_eq!(numbers, vec![0, 1, 2, 3, 4]);
        assert_eq!(px, vec![7.0, 8.0, 7.0, 8.0, 7.0]);
        assert!(!ended);
    }

    #[test]
    fn corrupt_truncated_and_unsupported_files_are_rejected_with_a_reason() {
        let good = tiff_u16(&[vec![5; 64]], 8, 8);
        assert!(TiffStack::decode(Cursor::new(b"not a tiff at all".to_vec()), 1 << 20).is_err());
        let truncated = good[..good.len() / 2].to_vec();
        let err = TiffStack::decode(Cursor::new(truncated), 1 << 20).unwrap_err();
        assert!(!err.is_empty());
        let mut buf = Cursor::new(Vec::new());
        TiffEncoder::new(&mut buf)
            .unwrap()
            .write_image::<colortype::RGB8>(2, 2, &[0u8; 12])
            .unwrap();
        let err = TiffStack::decode(Cursor::new(buf.into_inner()), 1 << 20).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        let err = TiffStack::decode(Cursor::new(good), 10).unwrap_err();
        assert!(err.contains("max_mib"), "{err}");
    }

    #[test]
    fn pages_of_different_sizes_are_rejected() {
        let mut buf = Cursor::new(Vec::new());
        let mut enc = TiffEncoder::new(&mut buf).unwrap();
        enc.write_image::<colortype::Gray16>(2, 2, &[0u16; 4])
            .unwrap();
        enc.write_image::<colortype::Gray16>(3, 2, &[0u16; 6])
            .unwrap();
        let err = TiffStack::decode(Cursor::new(buf.into_inner()), 1 << 20).unwrap_err();
        assert!(err.contains("all pages must match"), "{err}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let cfg = ReplayConfig {
            path: "/nonexistent/stack.tif".into(),
            frame_rate_hz: 1.0,
            r#loop: false,
            max_mib: 1,
        };
        let err = ReplaySource::new(&cfg, FrameInterval::new(Duration::from_secs(1))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/stack.tif"), "{err}");
    }
}
