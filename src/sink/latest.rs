//! `LatestFrame`: a sink that keeps only the newest frame of a stream, for viewers that want
//! to look rather than to receive everything (the browser preview).
//!
//! Offering a frame replaces the previous one and wakes waiting viewers; nothing queues, so a
//! viewer that is slow (or gone) costs the publishing thread one pointer swap and never holds
//! more than one frame.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::FrameSink;
use crate::frame::Frame;

/// The newest frame of one stream.
pub struct LatestFrame {
    frame: Mutex<Option<Frame>>,
    published: watch::Sender<u64>,
    offered: AtomicU64,
}

impl Default for LatestFrame {
    fn default() -> Self {
        Self {
            frame: Mutex::new(None),
            published: watch::Sender::new(0),
            offered: AtomicU64::new(0),
        }
    }
}

impl LatestFrame {
    /// Frames offered so far.
    pub fn offered(&self) -> u64 {
        self.offered.load(Ordering::Relaxed)
    }

    /// A receiver that changes whenever a frame is offered (its value: frames offered).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The newest frame, if any.
    pub fn get(&self) -> Option<Frame> {
        self.frame.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Let go of the held frame (its buffer returns to its pool).
    pub fn clear(&self) {
        let old = self.frame.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(old);
    }
}

impl FrameSink for LatestFrame {
    fn offer(&self, frame: &Frame) {
        let old = self
            .frame
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(frame.clone());
        // The replaced frame goes back to its pool outside the lock.
        drop(old);
        let n = self.offered.fetch_add(1, Ordering::Relaxed) + 1;
        self.published.send_replace(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMeta, FrameSpec, PixelType, Pixels};

    fn frame(n: u64) -> Frame {
        Frame::standalone(
            FrameSpec::new(2, 1, PixelType::U16),
            FrameMeta::arriving_now(n, 0),
            Pixels::U16(vec![n as u16, 0]),
        )
    }

    #[test]
    fn keeps_only_the_newest_frame_and_wakes_watchers() {
        let latest = LatestFrame::default();
        let mut rx = latest.watch();
        assert!(latest.get().is_none());
        for n in 1..=3 {
            latest.offer(&frame(n));
        }
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 3);
        assert_eq!(latest.get().unwrap().meta().frame_number, 3);
        assert_eq!(latest.offered(), 3);
        latest.clear();
        assert!(latest.get().is_none());
    }
}
