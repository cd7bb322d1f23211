//! JSON forms of status, events, actions and rules for the preview page (the page's own
//! small vocabulary; gRPC clients use the protobuf messages instead).

use serde_json::{Value, json};

use crate::daemon::{AcquisitionState, Status};
use crate::events::Event;
use crate::rules::{Action, ActionConfig, ActionPhase, RuleStatus};

fn ms(us: f64) -> f64 {
    us / 1000.0
}

/// The page's status: acquisition, stages, subscribers, recording, rules and event counters.
pub fn status(s: &Status, streams: &[String], rules: &[RuleStatus]) -> Value {
    let stages: Vec<Value> = s
        .stages
        .iter()
        .map(|st| {
            json!({
                "name": st.name,
                "kind": st.kind,
                "input": st.input,
                "frames_in": st.frames_in,
                "frames_out": st.frames_out,
                "frames_dropped": st.frames_dropped,
                "errors": st.errors,
                "queue_depth": st.queue_depth,
                "queue_capacity": st.queue_capacity,
                "queue_policy": st.queue_policy,
                "latency_p50_ms": ms(st.latency_p50_us),
                "latency_p99_ms": ms(st.latency_p99_us),
                "process_p50_ms": ms(st.process_p50_us),
                "process_p99_ms": ms(st.process_p99_us),
                "model": st.model.as_ref().map(|m| format!("{} ({})", m.name, m.provider.used.name())),
                "frames_synthetic": st.frames_synthetic,
            })
        })
        .collect();
    let subscribers: Vec<Value> = s
        .subscribers
        .iter()
        .map(|sub| {
            json!({
                "id": sub.id,
                "stream": sub.stage,
                "delivered": sub.delivered,
                "dropped": sub.dropped,
                "queue_depth": sub.queue_depth,
                "queue_capacity": sub.queue_capacity,
                "skipped": sub.skipped,
                "max_fps": sub.max_fps,
            })
        })
        .collect();
    let recording = s.recording.as_ref().map(|r| {
        json!({
            "state": r.state.name(),
            "path": r.path.display().to_string(),
            "frames_written": r.frames_written(),
            "frames_not_recorded": r.frames_not_recorded(),
            "backlog_frames": r.queue_frames,
            "bytes_written": r.bytes_written(),
            "error": r.error,
        })
    });
    let e = &s.events;
    json!({
        "version": s.version,
        "state": if s.state == AcquisitionState::Running { "running" } else { "idle" },
        "source": s.source,
        "width": s.spec.map(|f| f.width),
        "height": s.spec.map(|f| f.height),
        "pixel_type": s.spec.map(|f| f.pixel_type.name()),
        "frame_interval_ms": s.frame_interval.as_secs_f64() * 1000.0,
        "frames_acquired": s.frames_acquired,
        "frames_lost_no_buffer": s.frames_lost_no_buffer,
        "frames_dropped_ring": s.frames_dropped_ring,
        "frames_late": s.frames_late,
        "frames_missing": s.frames_missing,
        "frames_incomplete": s.frames_incomplete,
        "frames_rejected": s.frames_rejected,
        "source_stalls": s.source_stalls,
        "source_stalled": s.source_stalled,
        "seconds_since_last_frame": s.since_last_frame.map(|d| d.as_secs_f64()),
        "ring_depth": s.ring_depth,
        "ring_capacity": s.ring_capacity,
        "uptime_s": s.uptime.as_secs_f64(),
        "acquisition_s": s.acquisition_time.as_secs_f64(),
        "streams": streams,
        "stages": stages,
        "subscribers": subscribers,
        "recording": recording,
        "rules": rules.iter().map(rule).collect::<Vec<_>>(),
        "events": {
            "detections": e.detections,
            "detections_dropped": e.detections_dropped,
            "events": e.events,
            "actions": e.actions,
            "actions_acknowledged": e.actions_acknowledged,
            "actions_failed": e.actions_failed,
            "captures": e.captures,
        },
    })
}

/// One rule with a one-line summary of what it does.
pub fn rule(r: &RuleStatus) -> Value {
    json!({
        "name": r.config.name,
        "dry_run": r.config.dry_run,
        "summary": rule_summary(r),
        "active": r.active,
        "triggers": r.triggers,
        "events_matched": r.events_matched,
        "suppressed": r.suppressed,
        "releases": r.releases,
    })
}

fn rule_summary(r: &RuleStatus) -> String {
    let w = &r.config.when;
    let mut when = vec![format!(
        "{}/{}",
        w.detector.as_deref().unwrap_or("any detector"),
        w.kind.as_deref().unwrap_or("any kind")
    )];
    if let Some(m) = w.min_score {
        when.push(format!("score>={m}"));
    }
    if let Some(h) = &w.hysteresis {
        when.push(format!("signal above {} until below {}", h.upper, h.lower));
    }
    if let Some(n) = w.count {
        when.push(format!("{n} within {} s", w.window_s.unwrap_or(0.0)));
    }
    if let Some(roi) = w.roi {
        when.push(format!("in roi {roi:?}"));
    }
    let actions: Vec<String> = r
        .config
        .actions
        .iter()
        .map(|a| match a {
            ActionConfig::SetInterval {
                interval_ms,
                speedup,
                ..
            } => match (interval_ms, speedup) {
                (Some(ms), _) => format!("interval {ms} ms"),
                (_, Some(x)) => format!("{x}x faster"),
                _ => "set interval".into(),
            },
            ActionConfig::Capture {
                stream,
                pre_frames,
                post_frames,
            } => format!("capture {stream} ({pre_frames} before, {post_frames} after)"),
            ActionConfig::Emit { name, .. } => format!("emit {name}"),
        })
        .collect();
    format!("when {} -> {}", when.join(", "), actions.join(", "))
}

/// One event.
pub fn event(e: &Event) -> Value {
    json!({
        "id": e.id,
        "kind": &*e.kind,
        "detector": &*e.detector,
        "stream": &*e.stream,
        "frame_number": e.frame_number,
        "timestamp_ns": e.timestamp_ns,
        "x": e.x,
        "y": e.y,
        "bbox": {"x": e.bbox.x, "y": e.bbox.y, "width": e.bbox.width, "height": e.bbox.height},
        "score": e.score,
        "ground_truth": e.ground_truth,
    })
}

/// One action.
pub fn action(a: &Action) -> Value {
    let params: serde_json::Map<String, Value> = a
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": a.id,
        "rule": a.rule,
        "name": a.name,
        "phase": match a.phase { ActionPhase::Trigger => "trigger", ActionPhase::Release => "release" },
        "dry_run": a.dry_run,
        "executed_by_daemon": a.executed_by_daemon,
        "params": params,
        "event_id": a.event.as_ref().map(|e| e.id),
        "frame_number": a.event.as_ref().map(|e| e.frame_number),
        "age_ms": a.created.elapsed().as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleConfig;

    #[test]
    fn a_rule_reads_as_one_line() {
        let config = RuleConfig::from_toml(
            r#"
name = "fast"
when = { detector = "divisions", min_score = 0.5, count = 2, window_s = 10 }
actions = [
  { type = "set_interval", speedup = 4 },
  { type = "capture", stream = "raw", pre_frames = 5, post_frames = 20 },
  { type = "emit", name = "move_stage" },
]
"#,
        )
        .unwrap();
        let status = RuleStatus {
            config,
            events_matched: 3,
            triggers: 1,
            suppressed: 0,
            releases: 0,
            active: false,
        };
        let v = rule(&status);
        assert_eq!(
            v["summary"],
            "when divisions/any kind, score>=0.5, 2 within 10 s -> 4x faster, \
             capture raw (5 before, 20 after), emit move_stage"
        );
        assert_eq!(v["triggers"], 1);
        assert_eq!(v["dry_run"], false);
    }
}
