//! `SubscriberHub`: live subscribers of one stage's output.
//!
//! Each subscriber has its own bounded queue. Publishing never blocks: when a subscriber's
//! queue is full its oldest frame is evicted and counted against that subscriber only, so a
//! slow client costs the pipeline nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use super::FrameSink;
use crate::frame::Frame;
use crate::pipeline::queue::send_evicting_oldest;

/// Counters of one subscriber.
#[derive(Debug, Default)]
pub struct SubscriberStats {
    /// Frames queued for the subscriber.
    pub queued: AtomicU64,
    /// Frames the subscriber took.
    pub delivered: AtomicU64,
    /// Frames evicted because the subscriber was too slow.
    pub dropped: AtomicU64,
}

/// A snapshot of one subscriber for status reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberInfo {
    /// Unique id within the daemon.
    pub id: u64,
    /// Stream watched.
    pub stage: String,
    /// Frames delivered.
    pub delivered: u64,
    /// Frames dropped for this subscriber.
    pub dropped: u64,
    /// Frames waiting in its queue.
    pub queue_depth: u64,
    /// Its queue capacity.
    pub queue_capacity: u64,
}

struct Subscriber {
    id: u64,
    tx: Sender<Frame>,
    evict: Receiver<Frame>,
    capacity: usize,
    stats: Arc<SubscriberStats>,
}

/// Subscribers of one named stream. Lives as long as the daemon, across acquisitions.
pub struct SubscriberHub {
    stage: String,
    subscribers: Mutex<Vec<Subscriber>>,
    sinks: Mutex<Vec<(u64, Arc<dyn FrameSink>)>>,
    ids: Arc<AtomicU64>,
}

impl SubscriberHub {
    /// A hub for the stream `stage`, taking subscriber ids from `ids`.
    pub fn new(stage: impl Into<String>, ids: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            stage: stage.into(),
            subscribers: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            ids,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Name of the stream.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Add a subscriber with a queue of `capacity` frames.
    pub fn subscribe(self: &Arc<Self>, capacity: usize) -> Subscription {
        let capacity = capacity.max(1);
        let (tx, rx) = bounded(capacity);
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let stats = Arc::new(SubscriberStats::default());
        self.lock().push(Subscriber {
            id,
            tx,
            evict: rx.clone(),
            capacity,
            stats: stats.clone(),
        });
        tracing::info!(stage = %self.stage, id, capacity, "subscriber added");
        Subscription {
            id,
            rx,
            stats,
            hub: self.clone(),
        }
    }

    /// Offer a frame to every sink and subscriber without blocking.
    pub fn publish(&self, frame: &Frame) {
        for (_, sink) in self.sinks().iter() {
            sink.offer(frame);
        }
        let subscribers = self.lock();
        for s in subscribers.iter() {
            if send_evicting_oldest(&s.tx, &s.evict, frame.clone(), &s.stats.dropped) {
                s.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn sinks(&self) -> MutexGuard<'_, Vec<(u64, Arc<dyn FrameSink>)>> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attach a sink (e.g. a recording) that sees every frame published from now on.
    pub fn attach(&self, sink: Arc<dyn FrameSink>) -> u64 {
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        self.sinks().push((id, sink));
        id
    }

    /// Detach the sink `id`; it sees no frame published after this returns.
    pub fn detach(&self, id: u64) {
        self.sinks().retain(|(i, _)| *i != id);
    }

    /// Snapshot of the subscribers.
    pub fn infos(&self) -> Vec<SubscriberInfo> {
        self.lock()
            .iter()
            .map(|s| SubscriberInfo {
                id: s.id,
                stage: self.stage.clone(),
                delivered: s.stats.delivered.load(Ordering::Relaxed),
                dropped: s.stats.dropped.load(Ordering::Relaxed),
                queue_depth: s.tx.len() as u64,
                queue_capacity: s.capacity as u64,
            })
            .collect()
    }

    fn remove(&self, id: u64) {
        let mut subs = self.lock();
        if let Some(i) = subs.iter().position(|s| s.id == id) {
            let s = subs.swap_remove(i);
            tracing::info!(
                stage = %self.stage,
                id,
                delivered = s.stats.delivered.load(Ordering::Relaxed),
                dropped = s.stats.dropped.load(Ordering::Relaxed),
                "subscriber removed"
            );
        }
    }
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    rx: Receiver<Frame>,
    stats: Arc<SubscriberStats>,
    hub: Arc<SubscriberHub>,
}

impl Subscription {
    /// The subscriber's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Name of the stream subscribed to.
    pub fn stage(&self) -> &str {
        self.hub.stage()
    }

    /// Counters of this subscriber.
    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }

    /// Wait up to `timeout` for the next frame. `Err(true)` = timed out, `Err(false)` = closed.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Frame, bool> {
        match self.rx.recv_timeout(timeout) {
            Ok(f) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(f)
            }
            Err(RecvTimeoutError::Timeout) => Err(true),
            Err(RecvTimeoutError::Disconnected) => Err(false),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tiny_test_frame as frame;

    #[test]
    fn a_slow_subscriber_loses_only_its_own_frames() {
        let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
        let slow = hub.subscribe(2);
        let fast = hub.subscribe(100);
        for n in 0..10 {
            hub.publish(&frame(n));
        }
        let got_fast: Vec<u64> = (0..10)
            .map(|_| {
                fast.recv_timeout(Duration::from_millis(10))
                    .unwrap()
                    .meta()
                    .frame_number
            })
            .collect();
        assert_eq!(got_fast, (0..10).collect::<Vec<_>>());
        assert_eq!(fast.stats().dropped.load(Ordering::Relaxed), 0);
        let got_slow: Vec<u64> = (0..2)
            .map(|_| {
                slow.recv_timeout(Duration::from_millis(10))
                    .unwrap()
                    .meta()
                    .frame_number
            })
            .collect();
        assert_eq!(
            got_slow,
            vec![8, 9],
            "the slow subscriber keeps the newest frames"
        );
        assert_eq!(slow.stats().dropped.load(Ordering::Relaxed), 8);
        let infos = hub.infos();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos.iter().map(|i| i.dropped).sum::<u64>(), 8);
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
        let s = hub.subscribe(1);
        assert_eq!(hub.infos().len(), 1);
        drop(s);
        assert!(hub.infos().is_empty());
        hub.publish(&frame(0)); // nobody listening: nothing happens
    }
}
