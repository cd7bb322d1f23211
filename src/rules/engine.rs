//! `RuleEngine`: one thread that receives every detection, publishes the events, evaluates
//! the rules and carries out their actions (interval changes, captures, actions for control
//! software). It lives as long as the daemon; rules can be listed, replaced and deleted while
//! it runs, and a rule that fails its checks never replaces a running one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::capture::CaptureSet;
use super::interval::{IntervalChange, IntervalGovernor};
use super::{ActionConfig, RuleConfig, RuleContext, RuleError};
use crate::events::fanout::{Fanout, FanoutReceiver};
use crate::events::{Detection, EngineInput, EngineSender, Event, engine_channel};

/// How often timed holds are checked when no detection arrives.
const TICK: Duration = Duration::from_millis(20);

/// Acknowledgements remembered (older actions can no longer be acknowledged).
const ACK_HISTORY: usize = 65_536;

/// Ground-truth events remembered for `ListGroundTruth`.
const GROUND_TRUTH_HISTORY: usize = 4096;

/// Whether an action starts something or ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionPhase {
    /// A rule triggered.
    Trigger,
    /// A rule's effect ended.
    Release,
}

/// Something a rule asks for, or did.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique and increasing; acknowledge with it.
    pub id: u64,
    /// The rule.
    pub rule: String,
    /// `set_frame_interval`, `capture` or the rule's own action name.
    pub name: String,
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// Trigger or release.
    pub phase: ActionPhase,
    /// Logged and streamed only.
    pub dry_run: bool,
    /// The daemon carried it out itself.
    pub executed_by_daemon: bool,
    /// The event that triggered it.
    pub event: Option<Event>,
    /// When it was made.
    pub created: Instant,
}

/// A rule and its counters, as the API shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStatus {
    /// The rule.
    pub config: RuleConfig,
    /// Events that met the rule's filters.
    pub events_matched: u64,
    /// Times it triggered.
    pub triggers: u64,
    /// Triggers withheld by the cooldown or the rate limit.
    pub suppressed: u64,
    /// Times its effect ended.
    pub releases: u64,
    /// A hysteresis rule in its on state.
    pub active: bool,
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStatus {
    /// Detections received.
    pub detections: u64,
    /// Detections lost because the engine's queue was full.
    pub detections_dropped: u64,
    /// Events published (ground truth included).
    pub events: u64,
    /// Actions published.
    pub actions: u64,
    /// Actions acknowledged as done.
    pub actions_acknowledged: u64,
    /// Actions acknowledged as failed.
    pub actions_failed: u64,
    /// Captures started.
    pub captures: u64,
    /// Frames capture buffers could not copy.
    pub capture_frames_missed: u64,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No such action (or too old to remember).
    #[error("no action {0} (unknown, or older than the last {ACK_HISTORY} actions)")]
    NotFound(u64),
    /// Acknowledged before.
    #[error("action {0} was already acknowledged")]
    Already(u64),
}

struct RuleState {
    config: RuleConfig,
    window: VecDeque<Instant>,
    last_trigger: Option<Instant>,
    recent_triggers: VecDeque<Instant>,
    active: bool,
    last_high: Option<Instant>,
    events_matched: u64,
    triggers: u64,
    suppressed: u64,
    releases: u64,
}

impl RuleState {
    fn new(config: RuleConfig) -> Self {
        Self {
            config,
            window: VecDeque::new(),
            last_trigger: None,
            recent_triggers: VecDeque::new(),
            active: false,
            last_high: None,
            events_matched: 0,
            triggers: 0,
            suppressed: 0,
            releases: 0,
        }
    }

    fn status(&self) -> RuleStatus {
        RuleStatus {
            config: self.config.clone(),
            events_matched: self.events_matched,
            triggers: self.triggers,
            suppressed: self.suppressed,
            releases: self.releases,
            active: self.active,
        }
    }

    /// Whether `e` passes the rule's filters (event rules only).
    fn matches(&self, e: &Event) -> bool {
        let w = &self.config.when;
        let detector_ok = match &w.detector {
            Some(d) => **d == *e.detector,
            // Ground truth only reaches rules that ask for it by name.
            None => !e.ground_truth,
        };
        detector_ok
            && w.kind.as_deref().is_none_or(|k| k == &*e.kind)
            && w.min_score.is_none_or(|s| e.score >= s)
            && w.roi.is_none_or(|[x, y, rw, rh]| {
                crate::events::BoundingBox {
                    x,
                    y,
                    width: rw,
                    height: rh,
                }
                .contains(e.x, e.y)
            })
    }

    /// Whether a trigger now is allowed by the cooldown and the rate limit (counting it).
    fn may_trigger(&mut self, now: Instant) -> bool {
        let w = &self.config.when;
        while self
            .recent_triggers
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent_triggers.pop_front();
        }
        let cooling = match (w.cooldown_s, self.last_trigger) {
            (Some(c), Some(t)) => now.duration_since(t).as_secs_f64() < c,
            _ => false,
        };
        let too_many = w
            .max_per_minute
            .is_some_and(|m| self.recent_triggers.len() >= m as usize);
        if cooling || too_many {
            self.suppressed += 1;
            return false;
        }
        self.last_trigger = Some(now);
        self.recent_triggers.push_back(now);
        self.triggers += 1;
        true
    }
}

struct AckBook {
    entries: HashMap<u64, (Instant, bool)>,
    order: VecDeque<u64>,
}

struct Shared {
    context: RuleContext,
    rules: Mutex<Vec<RuleState>>,
    events: Fanout<Event>,
    actions: Fanout<Action>,
    acks: Mutex<AckBook>,
    governor: Arc<IntervalGovernor>,
    captures: CaptureSet,
    ground_truth: Mutex<VecDeque<Event>>,
    /// The running source obeys interval changes itself (simulated, replay).
    paced: AtomicBool,
    next_event: AtomicU64,
    next_action: AtomicU64,
    detections: AtomicU64,
    actions_acknowledged: AtomicU64,
    actions_failed: AtomicU64,
    captures_started: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rule engine.
pub struct RuleEngine {
    shared: Arc<Shared>,
    sender: EngineSender,
    thread: Option<JoinHandle<()>>,
}

impl RuleEngine {
    /// Start the engine with `rules` (each checked against `context`; the first bad one is
    /// returned with its index).
    pub fn start(
        context: RuleContext,
        rules: &[RuleConfig],
        governor: Arc<IntervalGovernor>,
        captures: CaptureSet,
    ) -> Result<Self, (usize, RuleError)> {
        for (i, r) in rules.iter().enumerate() {
            r.check(&context).map_err(|e| (i, e))?;
            if rules[..i].iter().any(|o| o.name == r.name) {
                return Err((
                    i,
                    RuleError {
                        key: "name".into(),
                        problem: format!("{:?} is used by an earlier rule", r.name),
                    },
                ));
            }
        }
        let (sender, rx) = engine_channel();
        let shared = Arc::new(Shared {
            context,
            rules: Mutex::new(rules.iter().cloned().map(RuleState::new).collect()),
            events: Fanout::default(),
            actions: Fanout::default(),
            acks: Mutex::new(AckBook {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            governor,
            captures,
            ground_truth: Mutex::new(VecDeque::new()),
            paced: AtomicBool::new(true),
            next_event: AtomicU64::new(1),
            next_action: AtomicU64::new(1),
            detections: AtomicU64::new(0),
            actions_acknowledged: AtomicU64::new(0),
            actions_failed: AtomicU64::new(0),
            captures_started: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        shared.configure_captures(&lock(&shared.rules));
        let thread = std::thread::Builder::new()
            .name("rule-engine".into())
            .spawn({
                let shared = shared.clone();
                move || shared.run(rx)
            })
            .map_err(|e| {
                (
                    0,
                    RuleError {
                        key: "rules".into(),
                        problem: format!("cannot start the rule engine thread: {e}"),
                    },
                )
            })?;
        Ok(Self {
            shared,
            sender,
            thread: Some(thread),
        })
    }

    /// Where detect stages and the simulator send their results.
    pub fn sender(&self) -> EngineSender {
        self.sender.clone()
    }

    /// The frame interval's owner.
    pub fn governor(&self) -> &Arc<IntervalGovernor> {
        &self.shared.governor
    }

    /// What rules are checked against.
    pub fn context(&self) -> &RuleContext {
        &self.shared.context
    }

    /// Whether the running source obeys interval changes itself.
    pub fn set_paced(&self, paced: bool) {
        self.shared.paced.store(paced, Ordering::Relaxed);
    }

    /// Parse and check a rule without installing it.
    pub fn validate(&self, text: &str) -> Result<RuleConfig, RuleError> {
        let rule = RuleConfig::from_toml(text)?;
        rule.check(&self.shared.context)?;
        Ok(rule)
    }

    /// Install a rule (replacing the one of the same name; its counters start again).
    /// Returns its status and whether it replaced one.
    pub fn put(&self, text: &str) -> Result<(RuleStatus, bool), RuleError> {
        let rule = self.validate(text)?;
        let mut rules = lock(&self.shared.rules);
        let state = RuleState::new(rule);
        let status = state.status();
        let replaced = match rules
            .iter()
            .position(|r| r.config.name == state.config.name)
        {
            Some(i) => {
                let old = std::mem::replace(&mut rules[i], state);
                self.shared.end_rule(&old);
                true
            }
            None => {
                rules.push(state);
                false
            }
        };
        self.shared.configure_captures(&rules);
        tracing::info!(rule = %status.config.name, replaced, "rule installed");
        Ok((status, replaced))
    }

    /// Remove a rule; false when there is none of that name.
    pub fn delete(&self, name: &str) -> bool {
        let mut rules = lock(&self.shared.rules);
        let Some(i) = rules.iter().position(|r| r.config.name == name) else {
            return false;
        };
        let old = rules.remove(i);
        self.shared.end_rule(&old);
        self.shared.configure_captures(&rules);
        tracing::info!(rule = name, "rule deleted");
        true
    }

    /// Every rule with its counters, in installation order.
    pub fn list(&self) -> Vec<RuleStatus> {
        lock(&self.shared.rules)
            .iter()
            .map(RuleState::status)
            .collect()
    }

    /// Events from now on, into a queue of `capacity`.
    pub fn subscribe_events(&self, capacity: usize) -> FanoutReceiver<Event> {
        self.shared.events.subscribe(capacity)
    }

    /// Actions from now on, into a queue of `capacity`.
    pub fn subscribe_actions(&self, capacity: usize) -> FanoutReceiver<Action> {
        self.shared.actions.subscribe(capacity)
    }

    /// Record that control software carried out (or failed) action `id`; the time since
    /// the action was made.
    pub fn acknowledge(&self, id: u64, success: bool, message: &str) -> Result<Duration, AckError> {
        let mut book = lock(&self.shared.acks);
        let (created, acked) = book.entries.get_mut(&id).ok_or(AckError::NotFound(id))?;
        if *acked {
            return Err(AckError::Already(id));
        }
        *acked = true;
        let elapsed = created.elapsed();
        let counter = if success {
            &self.shared.actions_acknowledged
        } else {
            tracing::warn!(
                action = id,
                message,
                "control software reports an action failed"
            );
            &self.shared.actions_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(elapsed)
    }

    /// Ground-truth divisions of the simulated camera at or after `from_frame`.
    pub fn ground_truth(&self, from_frame: u64) -> Vec<Event> {
        lock(&self.shared.ground_truth)
            .iter()
            .filter(|e| e.frame_number >= from_frame)
            .cloned()
            .collect()
    }

    /// The acquisition stopped: end holds, captures and hysteresis states.
    pub fn acquisition_stopped(&self) {
        let sh = &self.shared;
        if let Some(change) = sh.governor.release_all() {
            tracing::info!(
                interval_ms = change.current.as_secs_f64() * 1e3,
                "rule interval holds ended with the acquisition"
            );
        }
        sh.captures.finish_all();
        for r in lock(&sh.rules).iter_mut() {
            r.active = false;
            r.window.clear();
        }
    }

    /// The acquisition started: forget the last run's ground truth.
    pub fn acquisition_started(&self) {
        lock(&self.shared.ground_truth).clear();
    }

    /// Counters.
    pub fn status(&self) -> EngineStatus {
        let sh = &self.shared;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineStatus {
            detections: load(&sh.detections),
            detections_dropped: self.sender.dropped(),
            events: load(&sh.next_event) - 1,
            actions: load(&sh.next_action) - 1,
            actions_acknowledged: load(&sh.actions_acknowledged),
            actions_failed: load(&sh.actions_failed),
            captures: load(&sh.captures_started),
            capture_frames_missed: sh.captures.missed(),
        }
    }
}

impl Drop for RuleEngine {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a triggering rule acts on.
struct Trigger<'a> {
    rule: &'a RuleConfig,
    event: Option<&'a Event>,
    now: Instant,
}

impl Shared {
    fn run(&self, rx: Receiver<EngineInput>) {
        while !self.stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(TICK) {
                Ok(EngineInput::Detection(d)) => self.on_detection(d),
                Ok(EngineInput::GroundTruth(e)) => self.on_ground_truth(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.expire_holds(Instant::now());
        }
    }

    fn publish_event(&self, e: &mut Event) {
        e.id = self.next_event.fetch_add(1, Ordering::Relaxed);
        self.events.publish(e);
    }

    fn on_ground_truth(&self, mut e: Event) {
        self.publish_event(&mut e);
        {
            let mut gt = lock(&self.ground_truth);
            gt.push_back(e.clone());
            while gt.len() > GROUND_TRUTH_HISTORY {
                gt.pop_front();
            }
        }
        let now = Instant::now();
        let mut rules = lock(&self.rules);
        for r in rules
            .iter_mut()
            .filter(|r| r.config.when.hysteresis.is_none())
        {
            self.on_event(r, &e, now);
        }
    }

    fn on_detection(&self, mut d: Detection) {
        self.detections.fetch_add(1, Ordering::Relaxed);
        for e in &mut d.events {
            self.publish_event(e);
        }
        let now = Instant::now();
        let mut rules = lock(&self.rules);
        for r in rules.iter_mut() {
            match r.config.when.hysteresis {
                Some(h) if r.config.when.detector.as_deref() == Some(&*d.detector) => {
                    let strongest = d.events.iter().max_by(|a, b| a.score.total_cmp(&b.score));
                    r.events_matched += d.events.len() as u64;
                    if d.signal >= h.upper {
                        r.last_high = Some(now);
                        if !r.active && r.may_trigger(now) {
                            r.active = true;
                            self.act(&Trigger {
                                rule: &r.config,
                                event: strongest,
                                now,
                            });
                        }
                    } else if r.active
                        && d.signal < h.lower
                        && r.last_high
                            .is_none_or(|t| now.duration_since(t).as_secs_f64() >= h.min_dwell_s)
                    {
                        r.active = false;
                        r.releases += 1;
                        self.release(&r.config, now);
                    }
                }
                Some(_) => {}
                None => {
                    for e in &d.events {
                        self.on_event(r, e, now);
                    }
                }
            }
        }
    }

    /// An event reaches an event rule.
    fn on_event(&self, r: &mut RuleState, e: &Event, now: Instant) {
        if !r.matches(e) {
            return;
        }
        r.events_matched += 1;
        let w = &r.config.when;
        let need = w.count.unwrap_or(1) as usize;
        if let Some(window) = w.window_s {
            while r
                .window
                .front()
                .is_some_and(|t| now.duration_since(*t).as_secs_f64() > window)
            {
                r.window.pop_front();
            }
        }
        r.window.push_back(now);
        if r.window.len() >= need {
            r.window.clear();
            if r.may_trigger(now) {
                self.act(&Trigger {
                    rule: &r.config,
                    event: Some(e),
                    now,
                });
            }
        }
    }

    /// Publish an action (and remember it for acknowledgement).
    fn publish_action(&self, mut a: Action) {
        a.id = self.next_action.fetch_add(1, Ordering::Relaxed);
        {
            let mut book = lock(&self.acks);
            book.entries.insert(a.id, (a.created, false));
            book.order.push_back(a.id);
            while book.order.len() > ACK_HISTORY {
                if let Some(old) = book.order.pop_front() {
                    book.entries.remove(&old);
                }
            }
        }
        if a.dry_run {
            tracing::info!(rule = %a.rule, action = %a.name, params = ?a.params, "dry run: would act");
        } else {
            tracing::debug!(rule = %a.rule, action = %a.name, params = ?a.params, "action");
        }
        self.actions.publish(&a);
    }

    fn action(
        &self,
        t: &Trigger<'_>,
        name: &str,
        params: Vec<(String, String)>,
        phase: ActionPhase,
    ) -> Action {
        Action {
            id: 0,
            rule: t.rule.name.clone(),
            name: name.into(),
            params,
            phase,
            dry_run: t.rule.dry_run,
            executed_by_daemon: false,
            event: t.event.cloned(),
            created: t.now,
        }
    }

    fn interval_params(change: Option<IntervalChange>, current: Duration) -> Vec<(String, String)> {
        let ms = |d: Duration| format!("{}", d.as_secs_f64() * 1e3);
        let mut p = vec![("interval_ms".to_string(), ms(current))];
        if let Some(c) = change {
            p.push(("previous_interval_ms".into(), ms(c.previous)));
        }
        p
    }

    /// Carry out a triggered rule's actions.
    fn act(&self, t: &Trigger<'_>) {
        tracing::info!(rule = %t.rule.name, frame = t.event.map(|e| e.frame_number), dry_run = t.rule.dry_run, "rule triggered");
        for a in &t.rule.actions {
            let action = match a {
                ActionConfig::SetInterval {
                    interval_ms,
                    speedup,
                    duration_s,
                } => {
                    let wanted = match (interval_ms, speedup) {
                        (Some(ms), _) => Duration::from_secs_f64(ms / 1e3),
                        (None, Some(f)) => self.governor.base().div_f64(*f),
                        (None, None) => continue, // refused by the checks
                    };
                    let mut params = Self::interval_params(None, wanted);
                    let mut executed = false;
                    if !t.rule.dry_run {
                        let until = duration_s.map(|d| t.now + Duration::from_secs_f64(d));
                        let change = self.governor.hold(&t.rule.name, wanted, until);
                        let current = self.governor.interval().get();
                        params = Self::interval_params(change, current);
                        executed = self.paced.load(Ordering::Relaxed);
                    }
                    if let Some(d) = duration_s {
                        params.push(("duration_s".into(), d.to_string()));
                    }
                    let mut a = self.action(t, "set_frame_interval", params, ActionPhase::Trigger);
                    a.executed_by_daemon = executed;
                    a
                }
                ActionConfig::Capture {
                    stream,
                    pre_frames,
                    post_frames,
                } => {
                    let mut params = vec![
                        ("stream".to_string(), stream.clone()),
                        ("pre_frames".into(), pre_frames.to_string()),
                        ("post_frames".into(), post_frames.to_string()),
                    ];
                    let mut executed = false;
                    if !t.rule.dry_run {
                        let frame = t.event.map_or(0, |e| e.frame_number);
                        let stamp = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis());
                        let rule: String = t.rule.name.chars().take(64).collect();
                        let name = format!("capture-{rule}-f{frame}-{stamp}");
                        let interval = self
                            .paced
                            .load(Ordering::Relaxed)
                            .then(|| self.governor.interval().get());
                        match self.captures.start(
                            stream,
                            &name,
                            *pre_frames,
                            *post_frames,
                            interval,
                        ) {
                            Ok(c) => {
                                self.captures_started.fetch_add(1, Ordering::Relaxed);
                                executed = true;
                                params.push(("recording".into(), c.name));
                                params.push(("path".into(), c.path));
                                params.push(("pre_captured".into(), c.pre_captured.to_string()));
                            }
                            Err(e) => {
                                tracing::warn!(rule = %t.rule.name, error = %e, "capture failed");
                                params.push(("error".into(), e));
                            }
                        }
                    }
                    let mut a = self.action(t, "capture", params, ActionPhase::Trigger);
                    a.executed_by_daemon = executed;
                    a
                }
                ActionConfig::Emit { name, params } => {
                    let filled = params
                        .iter()
                        .map(|(k, v)| (k.clone(), fill_value(v, t)))
                        .collect();
                    self.action(t, name, filled, ActionPhase::Trigger)
                }
            };
            self.publish_action(action);
        }
    }

    /// A hysteresis rule switched off, or a rule was removed while on: undo its effects.
    fn release(&self, rule: &RuleConfig, now: Instant) {
        tracing::info!(rule = %rule.name, "rule released");
        let t = Trigger {
            rule,
            event: None,
            now,
        };
        for a in &rule.actions {
            let action = match a {
                ActionConfig::SetInterval { .. } => {
                    let change = (!rule.dry_run)
                        .then(|| self.governor.release(&rule.name))
                        .flatten();
                    let params = Self::interval_params(change, self.governor.interval().get());
                    let mut a = self.action(&t, "set_frame_interval", params, ActionPhase::Release);
                    a.executed_by_daemon = !rule.dry_run && self.paced.load(Ordering::Relaxed);
                    a
                }
                ActionConfig::Capture { .. } => continue,
                ActionConfig::Emit { name, params } => {
                    let filled = params
                        .iter()
                        .map(|(k, v)| (k.clone(), fill_value(v, &t)))
                        .collect();
                    self.action(&t, name, filled, ActionPhase::Release)
                }
            };
            self.publish_action(action);
        }
    }

    /// A rule goes away (deleted or replaced): end its hold if it has one.
    fn end_rule(&self, r: &RuleState) {
        if r.active {
            self.release(&r.config, Instant::now());
        } else if let Some(change) = self.governor.release(&r.config.name) {
            tracing::info!(rule = %r.config.name, interval_ms = change.current.as_secs_f64() * 1e3, "interval hold ended with its rule");
        }
    }

    /// Timed interval holds that ran out are released and announced.
    fn expire_holds(&self, now: Instant) {
        let (ended, change) = self.governor.expire(now);
        if ended.is_empty() {
            return;
        }
        let rules = lock(&self.rules);
        for name in ended {
            let Some(r) = rules.iter().find(|r| r.config.name == name) else {
                continue;
            };
            let t = Trigger {
                rule: &r.config,
                event: None,
                now,
            };
            let params = Self::interval_params(change, self.governor.interval().get());
            let mut a = self.action(&t, "set_frame_interval", params, ActionPhase::Release);
            a.executed_by_daemon = self.paced.load(Ordering::Relaxed);
            self.publish_action(a);
        }
    }

    /// Keep as many frames on each captured stream as its rules want before a trigger.
    fn configure_captures(&self, rules: &[RuleState]) {
        let mut keep: HashMap<String, usize> = HashMap::new();
        for r in rules.iter().filter(|r| !r.config.dry_run) {
            for a in &r.config.actions {
                if let ActionConfig::Capture {
                    stream, pre_frames, ..
                } = a
                {
                    let k = keep.entry(stream.clone()).or_default();
                    *k = (*k).max(*pre_frames as usize);
                }
            }
        }
        self.captures.configure(&keep);
    }
}

/// An `emit` parameter with the event's fields filled in.
fn fill_value(v: &toml::Value, t: &Trigger<'_>) -> String {
    let toml::Value::String(s) = v else {
        return v.to_string();
    };
    super::fill_template(s, |name| {
        let Some(e) = t.event else {
            return match name {
                "rule" => t.rule.name.clone(),
                _ => String::new(),
            };
        };
        match name {
            "x" => format!("{}", e.x),
            "y" => format!("{}", e.y),
            "frame" => e.frame_number.to_string(),
            "score" => format!("{}", e.score),
            "kind" => e.kind.to_string(),
            "detector" => e.detector.to_string(),
            "stream" => e.stream.to_string(),
            "rule" => t.rule.name.clone(),
            "bbox_x" => e.bbox.x.to_string(),
            "bbox_y" => e.bbox.y.to_string(),
            "bbox_width" => e.bbox.width.to_string(),
            "bbox_height" => e.bbox.height.to_string(),
            "timestamp_ns" => e.timestamp_ns.to_string(),
            _ => String::new(),
        }
    })
}

#[cfg(test)]
mod tests;
