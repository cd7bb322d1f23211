//! `SharedEncodings`: each frame of a stream encoded once per shape (downsampling, 8-bit
//! window) and shared by every subscriber that asks for that shape.
//!
//! A stream's subscribers all wake on the same frame. The first to ask for a shape encodes
//! the frame while the others wait for its result, so fifty subscribers of full `raw` frames
//! cost one copy of each frame instead of fifty. Only the last [`SharedEncodings::KEPT`]
//! encodings are kept: a subscriber further behind than that encodes for itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use super::preview::{EncodedFrame, PreviewOptions, encode};
use crate::frame::Frame;

/// One frame in one shape, encoded by whoever asked first.
struct Entry {
    serial: u64,
    opts: PreviewOptions,
    encoded: Arc<OnceLock<Arc<EncodedFrame>>>,
}

/// The recent encodings of one stream.
#[derive(Default)]
pub struct SharedEncodings {
    recent: Mutex<VecDeque<Entry>>,
    encodes: std::sync::atomic::AtomicU64,
}

impl SharedEncodings {
    /// Encodings kept per stream (frames times shapes).
    pub const KEPT: usize = 8;

    /// Nothing encoded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `frame` encoded as `opts` asks, by this call or by an earlier one.
    pub fn encode(&self, frame: &Frame, opts: &PreviewOptions) -> Arc<EncodedFrame> {
        let cell = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            match recent
                .iter()
                .find(|e| e.serial == frame.serial() && e.opts == *opts)
            {
                Some(e) => e.encoded.clone(),
                None => {
                    if recent.len() == Self::KEPT {
                        recent.pop_front();
                    }
                    let encoded = Arc::new(OnceLock::new());
                    recent.push_back(Entry {
                        serial: frame.serial(),
                        opts: *opts,
                        encoded: encoded.clone(),
                    });
                    encoded
                }
            }
        };
        // Outside the lock: other shapes and frames do not wait for this encoding.
        cell.get_or_init(|| {
            self.encodes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Arc::new(encode(frame, opts))
        })
        .clone()
    }

    /// Encodings made so far (not those shared).
    pub fn encodes(&self) -> u64 {
        self.encodes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMeta, FrameSpec, PixelType, Pixels};

    fn frame_with(meta: FrameMeta, value: u16) -> Frame {
        let spec = FrameSpec::new(4, 4, PixelType::U16);
        Frame::standalone(spec, meta, Pixels::U16(vec![value; 16]))
    }

    fn frame(n: u64, value: u16) -> Frame {
        frame_with(FrameMeta::arriving_now(n, 0), value)
    }

    #[test]
    fn subscribers_of_the_same_shape_share_one_encoding_and_other_shapes_get_their_own() {
        let shared = SharedEncodings::new();
        let full = PreviewOptions::default();
        let small = PreviewOptions {
            downsample: 2,
            ..full
        };
        let f = frame(1, 7);
        // Fifty threads ask for the same frame at once: one encoding, the same bytes for all.
        let got: Vec<Arc<EncodedFrame>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50)
                .map(|_| s.spawn(|| shared.encode(&f, &full)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(shared.encodes(), 1);
        assert!(got.iter().all(|e| Arc::ptr_eq(e, &got[0])));
        assert_eq!(got[0].data.len(), 32);
        assert_eq!((got[0].width, got[0].height), (4, 4));
        let s = shared.encode(&f, &small);
        assert_eq!((s.width, s.height, shared.encodes()), (2, 2, 2));
    }

    #[test]
    fn frames_with_the_same_number_and_metadata_are_never_confused() {
        // Two different frames with identical metadata (an interpolated pair without camera
        // timestamps looks like this) must each get their own pixels.
        let shared = SharedEncodings::new();
        let opts = PreviewOptions::default();
        let meta = FrameMeta::arriving_now(5, 0);
        let (a, b) = (frame_with(meta, 1), frame_with(meta, 2));
        let (ea, eb) = (shared.encode(&a, &opts), shared.encode(&b, &opts));
        assert_eq!(u16::from_le_bytes([ea.data[0], ea.data[1]]), 1);
        assert_eq!(u16::from_le_bytes([eb.data[0], eb.data[1]]), 2);
    }

    #[test]
    fn only_the_last_few_encodings_are_kept() {
        let shared = SharedEncodings::new();
        let opts = PreviewOptions::default();
        let first = frame(0, 0);
        shared.encode(&first, &opts);
        for n in 1..=SharedEncodings::KEPT as u64 {
            shared.encode(&frame(n, 0), &opts);
        }
        let before = shared.encodes();
        shared.encode(&first, &opts); // evicted: encoded again
        assert_eq!(shared.encodes(), before + 1);
        assert_eq!(shared.recent.lock().unwrap().len(), SharedEncodings::KEPT);
    }
}
