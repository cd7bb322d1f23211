//! The ingest ring: a lock-free single-producer / single-consumer queue of frames between the
//! camera thread and the pipeline.
//!
//! The producer side never blocks. When the ring is full it applies the configured
//! [`OverflowPolicy`] and counts every frame it drops:
//! - `DropNewest`: the incoming frame is dropped.
//! - `DropOldest`: the oldest queued frame is evicted to make room. Eviction needs the
//!   consumer end, which the producer takes with a non-blocking `try_lock`; if the consumer is
//!   busy popping at that instant, a slot is about to free and the push is retried once, and
//!   if it still fails the incoming frame is dropped instead (counted as `dropped_newest`).
//!
//! The consumer thread sleeps with `park_timeout` when the ring is empty; the producer wakes it
//! with `unpark`, which never blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use ringbuf::traits::{Consumer as _, Observer as _, Producer as _, Split as _};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use serde::Deserialize;

use crate::frame::Frame;

/// What the producer does when the ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Drop the incoming frame.
    DropNewest,
    /// Evict the oldest queued frame and keep the incoming one.
    DropOldest,
}

impl OverflowPolicy {
    /// Name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            OverflowPolicy::DropNewest => "drop_newest",
            OverflowPolicy::DropOldest => "drop_oldest",
        }
    }
}

/// Counters of the ring, readable from any thread.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Frames accepted into the ring.
    pub pushed: AtomicU64,
    /// Frames taken out by the consumer.
    pub popped: AtomicU64,
    /// Incoming frames dropped because the ring was full.
    pub dropped_newest: AtomicU64,
    /// Queued frames evicted to make room for newer ones.
    pub dropped_oldest: AtomicU64,
}

impl RingStats {
    /// All frames the ring dropped, by either policy.
    pub fn dropped(&self) -> u64 {
        self.dropped_newest.load(Ordering::Relaxed) + self.dropped_oldest.load(Ordering::Relaxed)
    }
}

/// How often the producer tries to evict before giving up and dropping the incoming frame.
const EVICT_ATTEMPTS: usize = 64;

struct Shared {
    stats: RingStats,
    consumer_thread: OnceLock<Thread>,
    capacity: usize,
}

/// Create a ring of `capacity` frames with the given overflow policy.
pub fn ingest_ring(capacity: usize, policy: OverflowPolicy) -> (IngestProducer, IngestConsumer) {
    let capacity = capacity.max(1);
    let (prod, cons) = HeapRb::<Frame>::new(capacity).split();
    let shared = Arc::new(Shared {
        stats: RingStats::default(),
        consumer_thread: OnceLock::new(),
        capacity,
    });
    let cons = Arc::new(Mutex::new(cons));
    (
        IngestProducer {
            prod,
            cons: cons.clone(),
            policy,
            shared: shared.clone(),
        },
        IngestConsumer { cons, shared },
    )
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued, nothing dropped.
    Queued,
    /// Queued after evicting the oldest frame.
    QueuedEvictedOldest,
    /// The ring was full and the incoming frame was dropped.
    DroppedNewest,
}

/// The camera-thread end of the ring.
pub struct IngestProducer {
    prod: HeapProd<Frame>,
    cons: Arc<Mutex<HeapCons<Frame>>>,
    policy: OverflowPolicy,
    shared: Arc<Shared>,
}

impl IngestProducer {
    /// Queue a frame without ever blocking; see the module docs for the overflow rules.
    pub fn push(&mut self, frame: Frame) -> PushOutcome {
        let outcome = match self.prod.try_push(frame) {
            Ok(()) => PushOutcome::Queued,
            Err(frame) => match self.policy {
                OverflowPolicy::DropNewest => PushOutcome::DroppedNewest,
                OverflowPolicy::DropOldest => self.evict_oldest_then_push(frame),
            },
        };
        let stats = &self.shared.stats;
        match outcome {
            PushOutcome::Queued => {
                stats.pushed.fetch_add(1, Ordering::Relaxed);
            }
            PushOutcome::QueuedEvictedOldest => {
                stats.pushed.fetch_add(1, Ordering::Relaxed);
                stats.dropped_oldest.fetch_add(1, Ordering::Relaxed);
            }
            PushOutcome::DroppedNewest => {
                stats.dropped_newest.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(t) = self.shared.consumer_thread.get() {
            t.unpark();
        }
        outcome
    }

    fn evict_oldest_then_push(&mut self, mut frame: Frame) -> PushOutcome {
        // Bounded: the consumer holds its lock only for the duration of one pop.
        for _ in 0..EVICT_ATTEMPTS {
            if let Ok(mut cons) = self.cons.try_lock() {
                let evicted = cons.try_pop();
                drop(cons);
                return match self.prod.try_push(frame) {
                    Ok(()) if evicted.is_some() => PushOutcome::QueuedEvictedOldest,
                    Ok(()) => PushOutcome::Queued,
                    Err(_) => PushOutcome::DroppedNewest,
                };
            }
            // The consumer is popping right now, so a slot is about to be free.
            std::hint::spin_loop();
            match self.prod.try_push(frame) {
                Ok(()) => return PushOutcome::Queued,
                Err(f) => frame = f,
            }
        }
        PushOutcome::DroppedNewest
    }

    /// Shared counters.
    pub fn stats(&self) -> RingHandle {
        RingHandle {
            shared: self.shared.clone(),
        }
    }
}

/// The pipeline end of the ring.
pub struct IngestConsumer {
    cons: Arc<Mutex<HeapCons<Frame>>>,
    shared: Arc<Shared>,
}

impl IngestConsumer {
    /// Take the oldest frame, if any.
    pub fn try_pop(&self) -> Option<Frame> {
        let frame = self
            .cons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_pop();
        if frame.is_some() {
            self.shared.stats.popped.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }

    /// Take the oldest frame, sleeping up to `timeout` for one to arrive.
    ///
    /// The first call registers the calling thread as the one the producer wakes.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<Frame> {
        if let Some(f) = self.try_pop() {
            return Some(f);
        }
        let me = self
            .shared
            .consumer_thread
            .get_or_init(std::thread::current);
        debug_assert_eq!(me.id(), std::thread::current().id());
        std::thread::park_timeout(timeout);
        self.try_pop()
    }

    /// Shared counters.
    pub fn stats(&self) -> RingHandle {
        RingHandle {
            shared: self.shared.clone(),
        }
    }
}

/// A read-only view of the ring for status reporting.
#[derive(Clone)]
pub struct RingHandle {
    shared: Arc<Shared>,
}

impl RingHandle {
    /// Counters.
    pub fn counters(&self) -> &RingStats {
        &self.shared.stats
    }

    /// Capacity in frames.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Frames currently queued.
    pub fn depth(&self) -> usize {
        let s = &self.shared.stats;
        let pushed = s.pushed.load(Ordering::Relaxed);
        let gone = s.popped.load(Ordering::Relaxed) + s.dropped_oldest.load(Ordering::Relaxed);
        pushed.saturating_sub(gone) as usize
    }
}

impl std::fmt::Debug for RingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingHandle")
            .field("capacity", &self.shared.capacity)
            .field("depth", &self.depth())
            .finish()
    }
}

/// Frames queued in a consumer, for tests.
impl IngestConsumer {
    /// Frames currently queued.
    pub fn len(&self) -> usize {
        self.cons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .occupied_len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tiny_test_frame as frame;

    fn drain(c: &IngestConsumer) -> Vec<u64> {
        std::iter::from_fn(|| c.try_pop())
            .map(|f| f.meta().frame_number)
            .collect()
    }

    #[test]
    fn drop_newest_keeps_the_first_frames_and_counts_the_rest() {
        let (mut p, c) = ingest_ring(3, OverflowPolicy::DropNewest);
        let outcomes: Vec<_> = (0..5).map(|n| p.push(frame(n))).collect();
        assert_eq!(outcomes[3], PushOutcome::DroppedNewest);
        assert_eq!(drain(&c), vec![0, 1, 2]);
        let s = p.stats();
        assert_eq!(s.counters().dropped_newest.load(Ordering::Relaxed), 2);
        assert_eq!(s.counters().pushed.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn drop_oldest_keeps_the_latest_frames_and_counts_evictions() {
        let (mut p, c) = ingest_ring(3, OverflowPolicy::DropOldest);
        for n in 0..5 {
            p.push(frame(n));
        }
        assert_eq!(p.stats().depth(), 3);
        assert_eq!(drain(&c), vec![2, 3, 4]);
        let s = p.stats();
        assert_eq!(s.counters().dropped_oldest.load(Ordering::Relaxed), 2);
        assert_eq!(s.counters().dropped(), 2);
        assert_eq!(s.depth(), 0);
    }

    #[test]
    fn every_frame_is_delivered_or_counted_across_threads() {
        let (mut p, c) = ingest_ring(8, OverflowPolicy::DropOldest);
        let n_frames = 20_000u64;
        let consumer = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut idle = 0;
            while idle < 50 {
                match c.pop_timeout(Duration::from_millis(2)) {
                    Some(f) => {
                        seen.push(f.meta().frame_number);
                        idle = 0;
                    }
                    None => idle += 1,
                }
            }
            seen
        });
        for n in 0..n_frames {
            p.push(frame(n));
        }
        let seen = consumer.join().unwrap();
        let stats = p.stats();
        assert_eq!(seen.len() as u64 + stats.counters().dropped(), n_frames);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "order is preserved");
        assert_eq!(
            *seen.last().unwrap(),
            n_frames - 1,
            "the newest frame survives"
        );
    }
}
