//! `IntervalGovernor`: who decides the frame interval. The base interval comes from the
//! config or the client (`SetFrameInterval`); rules may hold a faster one for a while. The
//! source runs at the shortest interval held, or at the base when no rule holds one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::source::FrameInterval;

#[derive(Debug)]
struct Hold {
    rule: String,
    interval: Duration,
    until: Option<Instant>,
}

#[derive(Debug)]
struct State {
    base: Duration,
    holds: Vec<Hold>,
}

/// A change of the effective interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalChange {
    /// Before.
    pub previous: Duration,
    /// After.
    pub current: Duration,
}

/// The frame interval's owner.
#[derive(Debug)]
pub struct IntervalGovernor {
    interval: Arc<FrameInterval>,
    state: Mutex<State>,
}

impl IntervalGovernor {
    /// A governor of `interval`, whose current value is the base.
    pub fn new(interval: Arc<FrameInterval>) -> Self {
        Self {
            state: Mutex::new(State {
                base: interval.get(),
                holds: Vec::new(),
            }),
            interval,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shared interval the sources read.
    pub fn interval(&self) -> &Arc<FrameInterval> {
        &self.interval
    }

    /// The base interval (what the source runs at when no rule holds another).
    pub fn base(&self) -> Duration {
        self.lock().base
    }

    /// Apply the effective interval of `state`; the change, if there was one.
    fn apply(&self, state: &State) -> Option<IntervalChange> {
        let effective = state
            .holds
            .iter()
            .map(|h| h.interval)
            .min()
            .unwrap_or(state.base);
        let previous = self.interval.get();
        if effective == previous {
            return None;
        }
        // Intervals are checked before they are held or set as base.
        let _ = self.interval.set(effective);
        Some(IntervalChange {
            previous,
            current: effective,
        })
    }

    /// Set the base interval (config or client); refused outside the supported range.
    pub fn set_base(&self, base: Duration) -> Result<Option<IntervalChange>, String> {
        FrameInterval::check(base)?;
        let mut s = self.lock();
        s.base = base;
        Ok(self.apply(&s))
    }

    /// Rule `rule` holds `interval` until `until` (`None`: until released), replacing its
    /// earlier hold.
    pub fn hold(
        &self,
        rule: &str,
        interval: Duration,
        until: Option<Instant>,
    ) -> Option<IntervalChange> {
        let interval = interval.clamp(FrameInterval::MIN, FrameInterval::MAX);
        let mut s = self.lock();
        s.holds.retain(|h| h.rule != rule);
        s.holds.push(Hold {
            rule: rule.into(),
            interval,
            until,
        });
        self.apply(&s)
    }

    /// Rule `rule` lets go of its hold.
    pub fn release(&self, rule: &str) -> Option<IntervalChange> {
        let mut s = self.lock();
        s.holds.retain(|h| h.rule != rule);
        self.apply(&s)
    }

    /// Drop holds that ran out by `now`; the rules whose hold ended, and the change.
    pub fn expire(&self, now: Instant) -> (Vec<String>, Option<IntervalChange>) {
        let mut s = self.lock();
        let (ended, kept): (Vec<Hold>, Vec<Hold>) = std::mem::take(&mut s.holds)
            .into_iter()
            .partition(|h| h.until.is_some_and(|t| t <= now));
        s.holds = kept;
        let change = self.apply(&s);
        (ended.into_iter().map(|h| h.rule).collect(), change)
    }

    /// Drop every hold (acquisition stopped).
    pub fn release_all(&self) -> Option<IntervalChange> {
        let mut s = self.lock();
        s.holds.clear();
        self.apply(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_hold_wins_and_the_base_returns_when_holds_end() {
        let g = IntervalGovernor::new(FrameInterval::new(Duration::from_millis(1000)));
        let now = Instant::now();
        let ms = Duration::from_millis;
        let c = g.hold("a", ms(100), Some(now + ms(50))).unwrap();
        assert_eq!((c.previous, c.current), (ms(1000), ms(100)));
        assert_eq!(g.hold("b", ms(200), None), None, "a's 100 ms is shorter");
        let (ended, change) = g.expire(now + ms(60));
        assert_eq!(ended, vec!["a".to_string()]);
        assert_eq!(change.unwrap().current, ms(200));
        // The client changes the base while b holds: b still wins until released.
        assert_eq!(g.set_base(ms(500)).unwrap(), None);
        assert_eq!(g.release("b").unwrap().current, ms(500));
        assert!(g.set_base(Duration::ZERO).is_err());
        assert_eq!(g.interval().get(), ms(500));
    }
}
