//! Stage input queues: bounded, with an explicit policy for a full queue, and counted.
//!
//! - `block`: the upstream waits (back-pressure; upstream of the first stage the ingest ring
//!   absorbs it, so the camera thread still never blocks).
//! - `drop_oldest`: the oldest queued frame is evicted; counted as dropped.
//! - `latest`: a queue of one that always holds the newest frame; replaced frames count as
//!   dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde::Deserialize;

use super::stats::StageStats;
use crate::frame::Frame;

/// What happens when a stage's input queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    /// Upstream waits for room.
    #[default]
    Block,
    /// Evict the oldest queued frame.
    DropOldest,
    /// Keep only the newest frame (capacity 1).
    Latest,
}

impl QueuePolicy {
    /// Name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            QueuePolicy::Block => "block",
            QueuePolicy::DropOldest => "drop_oldest",
            QueuePolicy::Latest => "latest",
        }
    }
}

/// Size and policy of a stage's input queue (`queue = { capacity = 8, policy = "block" }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Frames the queue holds (forced to 1 for `latest`).
    pub capacity: usize,
    /// Full-queue policy.
    pub policy: QueuePolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 8,
            policy: QueuePolicy::Block,
        }
    }
}

impl QueueConfig {
    /// Capacity actually used.
    pub fn effective_capacity(&self) -> usize {
        match self.policy {
            QueuePolicy::Latest => 1,
            _ => self.capacity.max(1),
        }
    }
}

/// The sending end of a stage's input queue.
#[derive(Debug)]
pub struct QueueSender {
    tx: Sender<Frame>,
    /// Only the dropping policies hold a receiver to evict with; a blocking sender must see
    /// the channel disconnect when the stage goes, or it could wait forever.
    evict: Option<Receiver<Frame>>,
    stats: Arc<StageStats>,
}

/// Create a stage input queue whose counters live in `stats`.
pub fn stage_queue(config: QueueConfig, stats: Arc<StageStats>) -> (QueueSender, Receiver<Frame>) {
    let (tx, rx) = bounded(config.effective_capacity());
    (
        QueueSender {
            tx,
            evict: (config.policy != QueuePolicy::Block).then(|| rx.clone()),
            stats,
        },
        rx,
    )
}

/// Queue `item` (a frame, or a frame with what goes with it) without blocking: while the
/// channel is full, evict its oldest item (counted in `dropped`) and retry. `evict` is a
/// receiver of the same channel. Returns false when every receiver is gone.
pub fn send_evicting_oldest<T>(
    tx: &Sender<T>,
    evict: &Receiver<T>,
    item: T,
    dropped: &AtomicU64,
) -> bool {
    let mut item = item;
    loop {
        match tx.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if evict.try_recv().is_ok() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                item = back;
            }
        }
    }
}

impl QueueSender {
    /// Queue a frame according to the policy. Returns false once the stage has gone.
    pub fn send(&self, frame: Frame) -> bool {
        let stats = &self.stats;
        let sent = match &self.evict {
            None => self.tx.send(frame).is_ok(),
            Some(evict) => send_evicting_oldest(&self.tx, evict, frame, &stats.dropped),
        };
        if sent {
            stats.enqueued.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tiny_test_frame as frame;

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let stats = Arc::new(StageStats::default());
        let cfg = QueueConfig {
            capacity: 2,
            policy: QueuePolicy::DropOldest,
        };
        let (tx, rx) = stage_queue(cfg, stats.clone());
        for n in 0..5 {
            assert!(tx.send(frame(n)));
        }
        let got: Vec<u64> = rx.try_iter().map(|f| f.meta().frame_number).collect();
        assert_eq!(got, vec![3, 4]);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(stats.enqueued.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn latest_holds_one_frame() {
        let stats = Arc::new(StageStats::default());
        let cfg = QueueConfig {
            capacity: 50,
            policy: QueuePolicy::Latest,
        };
        let (tx, rx) = stage_queue(cfg, stats.clone());
        for n in 0..4 {
            tx.send(frame(n));
        }
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.recv().unwrap().meta().frame_number, 3);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn block_waits_for_room_and_loses_nothing() {
        let stats = Arc::new(StageStats::default());
        let cfg = QueueConfig {
            capacity: 1,
            policy: QueuePolicy::Block,
        };
        let (tx, rx) = stage_queue(cfg, stats.clone());
        let producer = std::thread::spawn(move || {
            for n in 0..100 {
                tx.send(frame(n));
            }
        });
        let got: Vec<u64> = rx.iter().map(|f| f.meta().frame_number).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_blocking_sender_does_not_hang_when_the_stage_is_gone() {
        let stats = Arc::new(StageStats::default());
        let cfg = QueueConfig {
            capacity: 1,
            policy: QueuePolicy::Block,
        };
        let (tx, rx) = stage_queue(cfg, stats.clone());
        assert!(tx.send(frame(0)));
        drop(rx);
        assert!(
            !tx.send(frame(1)),
            "send to a finished stage fails instead of blocking"
        );
        assert_eq!(stats.enqueued.load(Ordering::Relaxed), 1);
    }
}
