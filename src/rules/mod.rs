//! Event-triggered acquisition rules: a rule is a condition on events (or on a detector's
//! frame-level signal, with hysteresis) and actions to take when it triggers.
//!
//! Rules are data, never code: TOML tables (`[[rules]]` in the config, one table over the
//! `Rules` gRPC service) checked against the running configuration before they are
//! installed. Placeholders in action parameters (`{x}`, `{frame}`, ...) are plain
//! substitutions from the triggering event.
//!
//! ```toml
//! [[rules]]
//! name = "fast-on-division"
//! when = { detector = "divisions", hysteresis = { upper = 0.5, lower = 0.2, min_dwell_s = 20 } }
//! actions = [
//!   { type = "set_interval", speedup = 10 },
//!   { type = "capture", stream = "raw", pre_frames = 20, post_frames = 40 },
//!   { type = "emit", name = "move_stage", params = { x = "{x}", y = "{y}" } },
//! ]
//! ```

pub mod capture;
pub mod engine;
pub mod interval;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::FrameInterval;

pub use engine::{Action, ActionPhase, RuleEngine, RuleStatus};

/// Detector name of the simulated camera's ground truth (usable in rules, for testing
/// control software against exact events).
pub const GROUND_TRUTH_DETECTOR: &str = "simulator";

/// Event kind of the simulated camera's ground truth.
pub const GROUND_TRUTH_KIND: &str = "division";

/// Most frames a capture keeps before or after its trigger.
pub const MAX_CAPTURE_FRAMES: u32 = 1000;

/// Longest counting window, cooldown, dwell or hold, seconds (one day).
pub const MAX_SECONDS: f64 = 86_400.0;

/// Placeholders allowed in `emit` parameters.
pub const PLACEHOLDERS: &[&str] = &[
    "x",
    "y",
    "frame",
    "score",
    "kind",
    "detector",
    "stream",
    "rule",
    "bbox_x",
    "bbox_y",
    "bbox_width",
    "bbox_height",
    "timestamp_ns",
];

/// Whether `s` is a usable name: non-empty ASCII letters, digits, `_` or `-`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name.
    pub name: String,
    /// Log and stream what would happen, change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// When it triggers.
    pub when: Condition,
    /// What it does.
    pub actions: Vec<ActionConfig>,
}

/// When a rule triggers.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Only events of this detect stage (required for hysteresis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// Only events of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only events scoring at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    /// Only events whose centre is in `[x, y, width, height]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi: Option<[u32; 4]>,
    /// Trigger when this many matching events fall within `window_s` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The counting window, seconds (needed when `count` > 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<f64>,
    /// No new trigger within this long after one, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_s: Option<f64>,
    /// At most this many triggers in any minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
    /// Trigger on the detector's frame signal instead of on events (event-driven
    /// acquisition, Mahecic et al. 2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<Hysteresis>,
}

/// Switch on when the signal reaches `upper`; switch off when it is below `lower` and at
/// least `min_dwell_s` have passed since it last reached `upper`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hysteresis {
    /// Switch-on level.
    pub upper: f32,
    /// Switch-off level.
    pub lower: f32,
    /// Least time on after the signal last reached `upper`, seconds.
    #[serde(default)]
    pub min_dwell_s: f64,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionConfig {
    /// Change the frame interval: the daemon's own sources obey, control software is told.
    SetInterval {
        /// The new interval, milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_ms: Option<f64>,
        /// Or: this many times faster than the base interval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speedup: Option<f64>,
        /// How long, seconds (event rules; a hysteresis rule holds it while on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
    },
    /// Save frames before and after the trigger to a recording (`capture-<rule>-<frame>`).
    Capture {
        /// Stream to capture (default `raw`).
        #[serde(default = "raw_stream")]
        stream: String,
        /// Frames before the trigger.
        #[serde(default)]
        pre_frames: u32,
        /// Frames after the trigger.
        #[serde(default)]
        post_frames: u32,
    },
    /// A named action for control software, with parameters.
    Emit {
        /// Action name (`move_stage`, `switch_channel`, ...).
        name: String,
        /// Parameters; strings may hold placeholders such as `{x}`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, toml::Value>,
    },
}

fn raw_stream() -> String {
    crate::pipeline::RAW.to_string()
}

/// What rules are checked against: the detectors, their event kinds, the streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleContext {
    /// Detect stages and the kind of their events.
    pub detectors: Vec<(String, String)>,
    /// Names of all streams.
    pub streams: Vec<String>,
}

impl RuleContext {
    fn kinds_of(&self, detector: Option<&str>) -> Vec<&str> {
        let mut kinds: Vec<&str> = self
            .detectors
            .iter()
            .filter(|(d, _)| detector.is_none_or(|want| want == d))
            .map(|(_, k)| k.as_str())
            .collect();
        if detector.is_none_or(|d| d == GROUND_TRUTH_DETECTOR) {
            kinds.push(GROUND_TRUTH_KIND);
        }
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    fn detector_names(&self) -> String {
        let mut names: Vec<&str> = self.detectors.iter().map(|(d, _)| d.as_str()).collect();
        names.push(GROUND_TRUTH_DETECTOR);
        names.join(", ")
    }
}

/// A rule that cannot be used: which key, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct RuleError {
    /// Key within the rule (`when.window_s`, `actions[1].stream`, ...).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

fn positive_seconds(v: Option<f64>, key: &str, out: &mut Vec<RuleError>) {
    if let Some(s) = v
        && !(s > 0.0 && s <= MAX_SECONDS)
    {
        out.push(RuleError {
            key: key.into(),
            problem: format!("must be in (0, {MAX_SECONDS}] seconds, got {s}"),
        });
    }
}

impl RuleConfig {
    /// Parse one rule from TOML text (the keys of one `[[rules]]` table).
    pub fn from_toml(text: &str) -> Result<Self, RuleError> {
        toml::from_str(text).map_err(|e| RuleError {
            key: e
                .span()
                .map(|s| format!("at byte {}", s.start))
                .unwrap_or_else(|| "rule".into()),
            problem: e.message().trim().to_string(),
        })
    }

    /// The rule as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show this rule: {e}"))
    }

    /// Everything wrong with this rule in `ctx` (empty: it can be installed).
    pub fn problems(&self, ctx: &RuleContext) -> Vec<RuleError> {
        let mut out = Vec::new();
        let mut push = |key: &str, problem: String| {
            out.push(RuleError {
                key: key.into(),
                problem,
            })
        };
        if !is_name(&self.name) {
            push(
                "name",
                format!("{:?} must be 1-128 letters, digits, '_' or '-'", self.name),
            );
        }
        let w = &self.when;
        if let Some(d) = &w.detector
            && d != GROUND_TRUTH_DETECTOR
            && !ctx.detectors.iter().any(|(name, _)| name == d)
        {
            push(
                "when.detector",
                format!(
                    "no detect stage named {d:?}; detectors: {}",
                    ctx.detector_names()
                ),
            );
        }
        if let Some(k) = &w.kind {
            let kinds = ctx.kinds_of(w.detector.as_deref());
            if !kinds.contains(&k.as_str()) {
                push(
                    "when.kind",
                    format!(
                        "no detector{} produces events of kind {k:?}; kinds: {}",
                        w.detector
                            .as_ref()
                            .map(|d| format!(" {d:?}"))
                            .unwrap_or_default(),
                        kinds.join(", ")
                    ),
                );
            }
        }
        if w.detector.is_none() && w.kind.is_none() {
            push("when", "name a detector, an event kind, or both".into());
        }
        if let Some(s) = w.min_score
            && !s.is_finite()
        {
            push(
                "when.min_score",
                format!("must be a finite number, got {s}"),
            );
        }
        if let Some([_, _, rw, rh]) = w.roi
            && (rw == 0 || rh == 0)
        {
            push(
                "when.roi",
                "width and height must be at least 1 ([x, y, width, height])".into(),
            );
        }
        match w.count {
            Some(0) => push("when.count", "must be at least 1".into()),
            Some(n) if n > 1 && w.window_s.is_none() => push(
                "when.window_s",
                format!("counting {n} events needs a window (window_s)"),
            ),
            _ => {}
        }
        if let Some(n) = w.max_per_minute
            && n == 0
        {
            push(
                "when.max_per_minute",
                "must be at least 1 (delete the rule to stop it)".into(),
            );
        }
        positive_seconds(w.window_s, "when.window_s", &mut out);
        if let Some(c) = w.cooldown_s
            && !(0.0..=MAX_SECONDS).contains(&c)
        {
            out.push(RuleError {
                key: "when.cooldown_s".into(),
                problem: format!("must be in [0, {MAX_SECONDS}] seconds, got {c}"),
            });
        }
        if let Some(h) = &w.hysteresis {
            let mut push = |key: &str, problem: String| {
                out.push(RuleError {
                    key: key.into(),
                    problem,
                })
            };
            if w.detector.is_none() {
                push(
                    "when.detector",
                    "a hysteresis rule follows one detector's frame signal; name it".into(),
                );
            }
            if !(h.upper.is_finite() && h.lower.is_finite()) || h.lower > h.upper {
                push(
                    "when.hysteresis",
                    format!(
                        "needs finite lower <= upper, got lower {} and upper {}",
                        h.lower, h.upper
                    ),
                );
            }
            if !(0.0..=MAX_SECONDS).contains(&h.min_dwell_s) {
                push(
                    "when.hysteresis.min_dwell_s",
                    format!(
                        "must be in [0, {MAX_SECONDS}] seconds, got {}",
                        h.min_dwell_s
                    ),
                );
            }
            for (key, set) in [
                ("when.count", w.count.is_some()),
                ("when.window_s", w.window_s.is_some()),
                ("when.kind", w.kind.is_some()),
            ] {
                if set {
                    push(
                        key,
                        "does not apply to a hysteresis rule (it follows the frame signal)".into(),
                    );
                }
            }
        }
        if self.actions.is_empty() {
            out.push(RuleError {
                key: "actions".into(),
                problem: "a rule needs at least one action".into(),
            });
        }
        for (i, a) in self.actions.iter().enumerate() {
            action_problems(
                a,
                &format!("actions[{i}]"),
                w.hysteresis.is_some(),
                ctx,
                &mut out,
            );
        }
        out
    }

    /// Check the rule in `ctx`: the first problem, if any.
    pub fn check(&self, ctx: &RuleContext) -> Result<(), RuleError> {
        match self.problems(ctx).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn action_problems(
    a: &ActionConfig,
    at: &str,
    hysteresis: bool,
    ctx: &RuleContext,
    out: &mut Vec<RuleError>,
) {
    let mut push = |key: &str, problem: String| {
        out.push(RuleError {
            key: format!("{at}.{key}"),
            problem,
        })
    };
    match a {
        ActionConfig::SetInterval {
            interval_ms,
            speedup,
            duration_s,
        } => {
            match (interval_ms, speedup) {
                (Some(ms), None) => {
                    let checked = if ms.is_finite() && *ms > 0.0 {
                        FrameInterval::check(Duration::from_secs_f64(ms / 1e3))
                    } else {
                        Err(format!(
                            "must be a positive number of milliseconds, got {ms}"
                        ))
                    };
                    if let Err(e) = checked {
                        push("interval_ms", e);
                    }
                }
                (None, Some(f)) => {
                    if !(f.is_finite() && *f > 0.0 && *f <= 10_000.0) {
                        push("speedup", format!("must be in (0, 10000], got {f}"));
                    }
                }
                _ => push(
                    "interval_ms",
                    "give interval_ms or speedup (one of them)".into(),
                ),
            }
            match (hysteresis, duration_s) {
                (true, Some(_)) => push(
                    "duration_s",
                    "a hysteresis rule holds the interval while it is on; drop duration_s".into(),
                ),
                (false, None) => push(
                    "duration_s",
                    "how long the new interval holds, seconds (needed for event rules)".into(),
                ),
                (false, Some(d)) if !(*d > 0.0 && *d <= MAX_SECONDS) => push(
                    "duration_s",
                    format!("must be in (0, {MAX_SECONDS}] seconds, got {d}"),
                ),
                _ => {}
            }
        }
        ActionConfig::Capture {
            stream,
            pre_frames,
            post_frames,
        } => {
            if !ctx.streams.contains(stream) {
                push(
                    "stream",
                    format!(
                        "no stream named {stream:?}; streams: {}",
                        ctx.streams.join(", ")
                    ),
                );
            }
            for (key, n) in [("pre_frames", pre_frames), ("post_frames", post_frames)] {
                if *n > MAX_CAPTURE_FRAMES {
                    push(key, format!("at most {MAX_CAPTURE_FRAMES} frames, got {n}"));
                }
            }
            if *pre_frames == 0 && *post_frames == 0 {
                push(
                    "pre_frames",
                    "a capture needs pre_frames or post_frames".into(),
                );
            }
        }
        ActionConfig::Emit { name, params } => {
            if !is_name(name) {
                push(
                    "name",
                    format!("{name:?} must be 1-128 letters, digits, '_' or '-'"),
                );
            }
            for (key, value) in params {
                match value {
                    toml::Value::String(s) => {
                        if let Err(e) = check_template(s) {
                            push(&format!("params.{key}"), e);
                        }
                    }
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {}
                    other => push(
                        &format!("params.{key}"),
                        format!(
                            "must be a string, number or boolean, not a {}",
                            other.type_str()
                        ),
                    ),
                }
            }
        }
    }
}

/// Check that every `{...}` in `s` is a known placeholder.
fn check_template(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("{s:?}: '{{' without '}}'"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{s:?}: unknown placeholder {{{name}}}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// `s` with its placeholders filled by `value`.
pub fn fill_template(s: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push_str(&value(&after[..close]));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
