//! `SubscriberHub`: live subscribers of one stage's output.
//!
//! Each subscriber has its own bounded queue. Publishing never blocks: when a subscriber's
//! queue is full its oldest frame is evicted and counted against that subscriber only, so a
//! slow client costs the pipeline nothing. A subscriber may also cap its frame rate (a live
//! view at 10 fps of a 100 fps camera): frames over the cap never enter its queue and are
//! counted as skipped, apart from the drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Frames left out by the subscriber's own frame-rate cap.
    pub skipped: AtomicU64,
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
    /// Frames left out by its frame-rate cap.
    pub skipped: u64,
    /// Its frame-rate cap in frames per second (None = every frame).
    pub max_fps: Option<f64>,
}

/// Frame-rate caps a subscriber may ask for, frames per second: from one frame in about 17
/// minutes to far more than any camera sends.
pub const MAX_FPS_RANGE: std::ops::RangeInclusive<f64> = 0.001..=100_000.0;

/// A frame-rate cap: lets a frame through once its arrival reaches the next due time.
///
/// The next due time advances by whole intervals from the last one, so a 10 fps cap of a
/// jittery 100 fps stream yields 10 fps and not 9; after a pause it restarts from the frame.
#[derive(Debug)]
struct Pace {
    interval: Duration,
    next_due: Option<Instant>,
}

impl Pace {
    fn new(max_fps: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / max_fps),
            next_due: None,
        }
    }

    fn admit(&mut self, arrival: Instant) -> bool {
        let next = match self.next_due {
            Some(due) if arrival < due => return false,
            Some(due) if due + self.interval > arrival => due + self.interval,
            _ => arrival + self.interval,
        };
        self.next_due = Some(next);
        true
    }
}

/// A queued frame and the frames the subscriber's cap had left out before it.
type Queued = (Frame, u64);

struct Subscriber {
    id: u64,
    tx: Sender<Queued>,
    evict: Receiver<Queued>,
    capacity: usize,
    max_fps: Option<f64>,
    pace: Option<Pace>,
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
        self.subscribe_at_most(capacity, None)
    }

    /// Add a subscriber with a queue of `capacity` frames that takes at most `max_fps` frames
    /// per second (within [`MAX_FPS_RANGE`]; None, or a rate outside it, = every frame).
    pub fn subscribe_at_most(
        self: &Arc<Self>,
        capacity: usize,
        max_fps: Option<f64>,
    ) -> Subscription {
        let max_fps = max_fps.filter(|r| MAX_FPS_RANGE.contains(r));
        let capacity = capacity.max(1);
        let (tx, rx) = bounded(capacity);
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let stats = Arc::new(SubscriberStats::default());
        self.lock().push(Subscriber {
            id,
            tx,
            evict: rx.clone(),
            capacity,
            max_fps,
            pace: max_fps.map(Pace::new),
            stats: stats.clone(),
        });
        tracing::info!(stage = %self.stage, id, capacity, ?max_fps, "subscriber added");
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
        let mut subscribers = self.lock();
        for s in subscribers.iter_mut() {
            if let Some(pace) = &mut s.pace
                && !pace.admit(frame.meta().arrival)
            {
                s.stats.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let skipped = s.stats.skipped.load(Ordering::Relaxed);
            if send_evicting_oldest(&s.tx, &s.evict, (frame.clone(), skipped), &s.stats.dropped) {
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
                skipped: s.stats.skipped.load(Ordering::Relaxed),
                max_fps: s.max_fps,
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
    rx: Receiver<Queued>,
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
        self.recv_with_skipped_timeout(timeout).map(|(f, _)| f)
    }

    /// [`Subscription::recv_timeout`], with the number of frames the subscription's frame-rate
    /// cap had skipped before this one (exact for this frame, unlike a later read of
    /// [`SubscriberStats::skipped`]).
    pub fn recv_with_skipped_timeout(&self, timeout: Duration) -> Result<(Frame, u64), bool> {
        match self.rx.recv_timeout(timeout) {
            Ok(queued) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(queued)
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

    /// A frame arriving `ms` milliseconds after `t0`.
    fn frame_at(n: u64, t0: Instant, ms: f64) -> Frame {
        let f = frame(n);
        let mut meta = *f.meta();
        meta.arrival = t0 + Duration::from_secs_f64(ms / 1000.0);
        Frame::standalone(f.spec(), meta, f.pixels().clone())
    }

    #[test]
    fn a_frame_rate_cap_keeps_its_rate_under_jitter_and_counts_what_it_skips() {
        let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
        let capped = hub.subscribe_at_most(1000, Some(10.0));
        let every = hub.subscribe(1000);
        let t0 = Instant::now();
        // 100 fps for 2 s with +-3 ms of jitter on every other frame.
        for n in 0..200u64 {
            let jitter = if n % 2 == 0 { 3.0 } else { -3.0 };
            hub.publish(&frame_at(n, t0, n as f64 * 10.0 + jitter));
        }
        let mut got = Vec::new();
        while let Ok((f, skipped)) = capped.recv_with_skipped_timeout(Duration::from_millis(1)) {
            // Each frame says exactly how many were left out before it.
            assert_eq!(skipped, f.meta().frame_number - got.len() as u64);
            got.push(f.meta().frame_number);
        }
        // One frame per 100 ms: 20 in 2 s, the first one at once, each about 10 frames apart.
        assert_eq!(got.len(), 20, "{got:?}");
        assert_eq!(got[0], 0);
        assert!(
            got.windows(2).all(|w| (9..=11).contains(&(w[1] - w[0]))),
            "{got:?}"
        );
        let stats = capped.stats();
        assert_eq!(stats.skipped.load(Ordering::Relaxed), 180);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(every.stats().skipped.load(Ordering::Relaxed), 0);
        assert_eq!(every.stats().queued.load(Ordering::Relaxed), 200);
        let info = hub
            .infos()
            .into_iter()
            .find(|i| i.id == capped.id())
            .unwrap();
        assert_eq!((info.skipped, info.max_fps), (180, Some(10.0)));
        // After a pause the cap restarts from the next frame instead of letting a burst through.
        hub.publish(&frame_at(1000, t0, 10_000.0));
        hub.publish(&frame_at(1001, t0, 10_010.0));
        assert_eq!(
            capped
                .recv_timeout(Duration::from_millis(1))
                .unwrap()
                .meta()
                .frame_number,
            1000
        );
        assert!(capped.recv_timeout(Duration::from_millis(1)).is_err());
        // A rate outside the range (here one whose interval overflows a clock) is no cap at
        // all, never a panic; the daemon refuses it before it gets here.
        let silly = hub.subscribe_at_most(4, Some(1e-30));
        hub.publish(&frame_at(2000, t0, 20_000.0));
        hub.publish(&frame_at(2001, t0, 20_000.1));
        assert!(silly.recv_timeout(Duration::from_millis(1)).is_ok());
        assert!(silly.recv_timeout(Duration::from_millis(1)).is_ok());
        let info = hub
            .infos()
            .into_iter()
            .find(|i| i.id == silly.id())
            .unwrap();
        assert_eq!(info.max_fps, None);
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
