//! `FramePool`: preallocated, recycled frame buffers.
//!
//! The pool keeps every slot it ever allocated. A slot is free when the pool holds the only
//! reference to it, which `Arc::get_mut` checks without locks. The producer that owns the pool
//! (a camera thread, a stage) is the only one that acquires from it; consumers release a slot
//! simply by dropping their [`Frame`] handles. In steady state no memory is allocated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Frame, FrameMeta, FrameSlot, FrameSpec, Pixels};

/// Counters of a pool, shareable with status reporting.
#[derive(Debug, Default)]
pub struct FramePoolStats {
    /// Slots allocated so far (initial ones included).
    pub allocated: AtomicU64,
    /// Acquisitions that found no free slot and no room to grow.
    pub exhausted: AtomicU64,
}

/// A pool of frame buffers of one [`FrameSpec`].
#[derive(Debug)]
pub struct FramePool {
    spec: FrameSpec,
    slots: Vec<Arc<FrameSlot>>,
    max_slots: usize,
    stats: Arc<FramePoolStats>,
}

impl FramePool {
    /// A pool with `initial` slots allocated now, growing on demand up to `max_slots`.
    pub fn new(spec: FrameSpec, initial: usize, max_slots: usize) -> Self {
        let max_slots = max_slots.max(initial).max(1);
        let stats = Arc::new(FramePoolStats::default());
        let mut slots = Vec::with_capacity(max_slots);
        for _ in 0..initial {
            slots.push(Self::new_slot(spec));
        }
        stats.allocated.store(initial as u64, Ordering::Relaxed);
        Self {
            spec,
            slots,
            max_slots,
            stats,
        }
    }

    fn new_slot(spec: FrameSpec) -> Arc<FrameSlot> {
        Arc::new(FrameSlot {
            spec,
            meta: FrameMeta::arriving_now(0, 0),
            pixels: Pixels::zeroed(spec),
            serial: 0,
        })
    }

    /// The spec every frame of this pool has.
    pub fn spec(&self) -> FrameSpec {
        self.spec
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<FramePoolStats> {
        self.stats.clone()
    }

    /// Most slots the pool will ever allocate.
    pub fn max_slots(&self) -> usize {
        self.max_slots
    }

    /// Number of slots currently allocated.
    pub fn allocated(&self) -> usize {
        self.slots.len()
    }

    /// Number of slots not referenced by any frame handle.
    pub fn free(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| Arc::strong_count(s) == 1)
            .count()
    }

    /// Exclusive access to a free slot, or `None` (counted) when every slot is in use and the
    /// pool may not grow. Never blocks.
    ///
    /// The lowest free slot is taken, so a lightly loaded pipeline keeps reusing the same few
    /// (cache-warm) buffers.
    pub fn acquire(&mut self) -> Option<FrameWriter<'_>> {
        if let Some(i) = self
            .slots
            .iter_mut()
            .position(|s| Arc::get_mut(s).is_some())
        {
            return Some(FrameWriter {
                slot: &mut self.slots[i],
            });
        }
        if self.slots.len() < self.max_slots {
            self.slots.push(Self::new_slot(self.spec));
            self.stats.allocated.fetch_add(1, Ordering::Relaxed);
            return Some(FrameWriter {
                slot: self.slots.last_mut().expect("slot just pushed"),
            });
        }
        self.stats.exhausted.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Exclusive, writable access to one pool slot. Publish it to get a shareable [`Frame`].
#[derive(Debug)]
pub struct FrameWriter<'a> {
    slot: &'a mut Arc<FrameSlot>,
}

impl FrameWriter<'_> {
    fn inner(&mut self) -> &mut FrameSlot {
        // The pool only hands out writers for slots it holds the only reference to.
        Arc::get_mut(self.slot).expect("writer slot is uniquely owned")
    }

    /// Shape and pixel type of the slot.
    pub fn spec(&self) -> FrameSpec {
        self.slot.spec
    }

    /// Writable metadata.
    pub fn meta_mut(&mut self) -> &mut FrameMeta {
        &mut self.inner().meta
    }

    /// Writable pixels.
    pub fn pixels_mut(&mut self) -> &mut Pixels {
        &mut self.inner().pixels
    }

    /// Metadata and pixels at once (to fill pixels while reading metadata).
    pub fn parts_mut(&mut self) -> (&mut FrameMeta, &mut Pixels) {
        let inner = self.inner();
        (&mut inner.meta, &mut inner.pixels)
    }

    /// Finish writing and share the frame.
    pub fn publish(mut self) -> Frame {
        self.inner().serial = super::next_serial();
        Frame(self.slot.clone())
    }

    /// For sources: stamp the arrival time now (the frame is complete in memory) and share it.
    pub fn publish_arrived(mut self) -> Frame {
        self.meta_mut().arrival = std::time::Instant::now();
        self.publish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelType;

    fn spec() -> FrameSpec {
        FrameSpec::new(4, 3, PixelType::U16)
    }

    #[test]
    fn slots_are_recycled_once_released() {
        let mut pool = FramePool::new(spec(), 2, 2);
        let a = pool.acquire().unwrap().publish();
        let b = pool.acquire().unwrap().publish();
        assert!(pool.acquire().is_none(), "both slots are in use");
        assert_eq!(pool.stats().exhausted.load(Ordering::Relaxed), 1);
        let a2 = a.clone();
        drop(a);
        assert!(pool.acquire().is_none(), "a clone still holds slot a");
        drop(a2);
        let c = pool.acquire().unwrap().publish();
        assert_eq!(pool.allocated(), 2);
        assert!(!c.same_buffer(&b));
    }

    #[test]
    fn grows_up_to_the_limit_and_counts_it() {
        let mut pool = FramePool::new(spec(), 1, 3);
        let held: Vec<Frame> = (0..3).map(|_| pool.acquire().unwrap().publish()).collect();
        assert_eq!(pool.allocated(), 3);
        assert_eq!(pool.stats().allocated.load(Ordering::Relaxed), 3);
        assert!(pool.acquire().is_none());
        drop(held);
        assert_eq!(pool.free(), 3);
    }

    #[test]
    fn writer_contents_are_visible_in_the_published_frame() {
        let mut pool = FramePool::new(spec(), 1, 1);
        let mut w = pool.acquire().unwrap();
        w.meta_mut().frame_number = 7;
        if let Pixels::U16(p) = w.pixels_mut() {
            p[5] = 1234;
        }
        let f = w.publish();
        assert_eq!(f.meta().frame_number, 7);
        assert_eq!(f.pixels().get_f32(5), 1234.0);
        let g = f.clone();
        assert!(g.same_buffer(&f), "clones share storage");
    }
}
