//! `Fanout`: one publisher, many subscribers, each with its own bounded queue. Publishing
//! never waits: a subscriber whose queue is full loses that item, and the loss is counted
//! for that subscriber alone (and shown to it on its next item).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::{self, error::TrySendError};

struct Subscriber<T> {
    tx: mpsc::Sender<T>,
    dropped: Arc<AtomicU64>,
}

/// A publisher of `T` to any number of subscribers.
pub struct Fanout<T> {
    subscribers: Mutex<Vec<Subscriber<T>>>,
}

impl<T> Default for Fanout<T> {
    fn default() -> Self {
        Self {
            subscribers: Mutex::new(Vec::new()),
        }
    }
}

/// The receiving end of one subscription; dropping it unsubscribes.
pub struct FanoutReceiver<T> {
    rx: mpsc::Receiver<T>,
    dropped: Arc<AtomicU64>,
}

impl<T> FanoutReceiver<T> {
    /// The next item (`None` once the publisher is gone).
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// The queue and the loss counter, e.g. to turn the queue into a stream.
    pub fn into_parts(self) -> (mpsc::Receiver<T>, Arc<AtomicU64>) {
        (self.rx, self.dropped)
    }

    /// Items this subscriber lost so far because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<T: Clone> Fanout<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<Subscriber<T>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new subscriber with a queue of `capacity` items (at least 1).
    pub fn subscribe(&self, capacity: usize) -> FanoutReceiver<T> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.lock().push(Subscriber {
            tx,
            dropped: dropped.clone(),
        });
        FanoutReceiver { rx, dropped }
    }

    /// Offer `item` to every subscriber; gone subscribers are removed.
    pub fn publish(&self, item: &T) {
        self.lock().retain(|s| match s.tx.try_send(item.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        });
    }

    /// Subscribers now.
    pub fn subscriber_count(&self) -> usize {
        let mut subscribers = self.lock();
        subscribers.retain(|s| !s.tx.is_closed());
        subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_subscriber_loses_only_its_own_items_and_counts_them() {
        let f = Fanout::<u32>::default();
        let mut slow = f.subscribe(2);
        let mut fast = f.subscribe(16);
        for i in 0..5 {
            f.publish(&i);
            assert_eq!(fast.try_recv(), Some(i));
        }
        assert_eq!(
            (slow.try_recv(), slow.try_recv(), slow.try_recv()),
            (Some(0), Some(1), None)
        );
        assert_eq!((slow.dropped(), fast.dropped()), (3, 0));
        drop(slow);
        f.publish(&9);
        assert_eq!(f.subscriber_count(), 1);
    }
}
