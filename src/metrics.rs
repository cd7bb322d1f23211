//! Prometheus text exposition (format 0.0.4) of a daemon [`Status`]: what `/metrics` serves.
//!
//! Every number comes from the same [`Status`] snapshot that `GetStatus` reports, so the two
//! always agree. Counters restart at zero with each acquisition (Prometheus' `rate()` treats
//! that as a counter reset). Latencies are exported as histograms in seconds with
//! bucket bounds four to a power of two that are exact edges of the daemon's own histograms.

use std::fmt::Write;

use crate::daemon::{AcquisitionState, Status};
use crate::latency::{EXPORT_BOUNDS_US, HistogramSnapshot};
use crate::rules::RuleStatus;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up (restarts at 0 with an acquisition).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, sum and count.
    Histogram,
}

impl MetricType {
    fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Writes families of samples in the text format.
#[derive(Default)]
pub struct PromText {
    out: String,
}

impl PromText {
    /// Start a family: `# HELP` and `# TYPE`. Samples follow until the next family.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: MetricType, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram (in seconds) under `labels`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in EXPORT_BOUNDS_US.iter().zip(&h.cumulative) {
            let le = number(*bound as f64 / 1e6);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, *count as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum_us as f64 / 1e6);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Write the daemon's metrics: acquisition, ring, stages, models, subscribers, recording,
/// events and rules.
pub fn write_status(p: &mut PromText, status: &Status, rules: &[RuleStatus], provider: &str) {
    use MetricType::{Counter, Gauge};
    p.family(
        "scopepilot_build_info",
        Gauge,
        "Build and run-time information (value always 1).",
    );
    p.sample(
        "scopepilot_build_info",
        &[
            ("version", status.version),
            ("execution_provider", provider),
        ],
        1.0,
    );
    p.single(
        "scopepilot_uptime_seconds",
        Gauge,
        "Time since the daemon started.",
        status.uptime.as_secs_f64(),
    );
    let running = status.state == AcquisitionState::Running;
    p.single(
        "scopepilot_acquisition_running",
        Gauge,
        "1 while acquiring.",
        running as u8 as f64,
    );
    p.single(
        "scopepilot_acquisition_seconds",
        Gauge,
        "Duration of the current (or last) acquisition.",
        status.acquisition_time.as_secs_f64(),
    );
    p.single(
        "scopepilot_frame_interval_seconds",
        Gauge,
        "Current frame interval of paced sources.",
        status.frame_interval.as_secs_f64(),
    );
    p.single(
        "scopepilot_source_stalled",
        Gauge,
        "1 while a pull source has sent no frame for ten frame intervals (at least 1 s).",
        status.source_stalled as u8 as f64,
    );
    for (name, help, value) in [
        (
            "scopepilot_source_stalls_total",
            "Times a pull source went quiet for ten frame intervals (at least 1 s).",
            status.source_stalls,
        ),
        (
            "scopepilot_frames_acquired_total",
            "Frames the source delivered to scopepilot in this acquisition.",
            status.frames_acquired,
        ),
        (
            "scopepilot_frames_lost_no_buffer_total",
            "Frames lost before the ring because every frame buffer was in use.",
            status.frames_lost_no_buffer,
        ),
        (
            "scopepilot_frames_dropped_ring_total",
            "Frames the ingest ring dropped by its overflow policy.",
            status.frames_dropped_ring,
        ),
        (
            "scopepilot_frames_late_total",
            "Frame slots a paced source missed because it ran behind its frame rate.",
            status.frames_late,
        ),
        (
            "scopepilot_frames_missing_total",
            "Frames a camera lost before they reached scopepilot (gaps in its frame numbers).",
            status.frames_missing,
        ),
        (
            "scopepilot_frames_incomplete_total",
            "Frames a camera delivered incomplete (missing packets, timeouts); discarded.",
            status.frames_incomplete,
        ),
        (
            "scopepilot_frames_rejected_total",
            "Pushed frames rejected as malformed.",
            status.frames_rejected,
        ),
    ] {
        p.single(name, Counter, help, value as f64);
    }
    p.single(
        "scopepilot_ring_depth",
        Gauge,
        "Frames waiting in the ingest ring.",
        status.ring_depth as f64,
    );
    p.single(
        "scopepilot_ring_capacity",
        Gauge,
        "Capacity of the ingest ring.",
        status.ring_capacity as f64,
    );
    write_stages(p, status);
    write_subscribers(p, status);
    write_recording(p, status);
    write_events(p, status, rules);
}

fn write_stages(p: &mut PromText, status: &Status) {
    use MetricType::{Counter, Gauge, Histogram};
    type Field = fn(&crate::daemon::StageStatus) -> u64;
    let counters: [(&str, MetricType, &str, Field); 8] = [
        (
            "scopepilot_stage_frames_in_total",
            Counter,
            "Frames a stage took from its input queue (the source's frames for raw).",
            |s| s.frames_in,
        ),
        (
            "scopepilot_stage_frames_out_total",
            Counter,
            "Frames a stage emitted.",
            |s| s.frames_out,
        ),
        (
            "scopepilot_stage_frames_dropped_total",
            Counter,
            "Frames dropped by a stage's input queue policy (by the ring, for raw).",
            |s| s.frames_dropped,
        ),
        (
            "scopepilot_stage_errors_total",
            Counter,
            "Frames a stage failed to process.",
            |s| s.errors,
        ),
        (
            "scopepilot_stage_frames_synthetic_total",
            Counter,
            "Generated (interpolated) frames among a stage's output.",
            |s| s.frames_synthetic,
        ),
        (
            "scopepilot_stage_gaps_skipped_total",
            Counter,
            "Intervals not interpolated because frames were missing across them.",
            |s| s.gaps_skipped,
        ),
        (
            "scopepilot_stage_queue_depth",
            Gauge,
            "Frames waiting in a stage's input queue.",
            |s| s.queue_depth,
        ),
        (
            "scopepilot_stage_queue_capacity",
            Gauge,
            "Capacity of a stage's input queue.",
            |s| s.queue_capacity,
        ),
    ];
    for (name, kind, help, field) in counters {
        p.family(name, kind, help);
        for s in &status.stages {
            p.sample(
                name,
                &[("stage", &s.name), ("kind", &s.kind)],
                field(s) as f64,
            );
        }
    }
    for (name, help, pick) in [
        (
            "scopepilot_stage_latency_seconds",
            "Time from a frame's arrival in scopepilot to its emission by a stage.",
            (|s| &s.latency) as fn(&crate::daemon::StageStatus) -> &HistogramSnapshot,
        ),
        (
            "scopepilot_stage_process_seconds",
            "Time a stage spent on each input frame.",
            |s| &s.process_time,
        ),
    ] {
        p.family(name, Histogram, help);
        for s in &status.stages {
            p.histogram(name, &[("stage", &s.name)], pick(s));
        }
    }
    let learned: Vec<_> = status
        .stages
        .iter()
        .filter_map(|s| s.model.as_ref().map(|m| (s, m)))
        .collect();
    p.family(
        "scopepilot_model_info",
        Gauge,
        "The model each learned stage runs, and on which execution provider (value 1).",
    );
    for (s, m) in &learned {
        p.sample(
            "scopepilot_model_info",
            &[
                ("stage", &s.name),
                ("model", &m.name),
                ("provider_requested", m.provider.requested.name()),
                ("provider", m.provider.used.name()),
            ],
            1.0,
        );
    }
    p.family(
        "scopepilot_model_inference_seconds",
        Histogram,
        "Inference time per frame of each learned stage's model (tiling, normalisation and \
         ONNX Runtime runs).",
    );
    for (s, m) in &learned {
        p.histogram(
            "scopepilot_model_inference_seconds",
            &[
                ("stage", &s.name),
                ("model", &m.name),
                ("provider", m.provider.used.name()),
            ],
            &s.process_time,
        );
    }
}

fn write_subscribers(p: &mut PromText, status: &Status) {
    use MetricType::{Counter, Gauge};
    type Field = fn(&crate::sink::subscribers::SubscriberInfo) -> u64;
    let fields: [(&str, MetricType, &str, Field); 5] = [
        (
            "scopepilot_subscriber_frames_delivered_total",
            Counter,
            "Frames a gRPC subscriber took.",
            |s| s.delivered,
        ),
        (
            "scopepilot_subscriber_frames_dropped_total",
            Counter,
            "Frames evicted from a gRPC subscriber's queue because it was too slow.",
            |s| s.dropped,
        ),
        (
            "scopepilot_subscriber_frames_skipped_total",
            Counter,
            "Frames left out by a gRPC subscriber's own frame-rate cap (max_fps), not lost.",
            |s| s.skipped,
        ),
        (
            "scopepilot_subscriber_queue_depth",
            Gauge,
            "Frames waiting in a gRPC subscriber's queue.",
            |s| s.queue_depth,
        ),
        (
            "scopepilot_subscriber_queue_capacity",
            Gauge,
            "Capacity of a gRPC subscriber's queue.",
            |s| s.queue_capacity,
        ),
    ];
    for (name, kind, help, field) in fields {
        p.family(name, kind, help);
        for s in &status.subscribers {
            let id = s.id.to_string();
            p.sample(
                name,
                &[("stream", &s.stage), ("subscriber", &id)],
                field(s) as f64,
            );
        }
    }
}

fn write_recording(p: &mut PromText, status: &Status) {
    use MetricType::{Counter, Gauge};
    let rec = status.recording.as_ref();
    let recording = rec.is_some_and(|r| r.state == crate::sink::record::RecordingState::Recording);
    p.single(
        "scopepilot_recording_active",
        Gauge,
        "1 while a recording is being written.",
        recording as u8 as f64,
    );
    let Some(r) = rec else { return };
    type Field = fn(&crate::sink::record::StreamRecordStatus) -> u64;
    let per_stream: [(&str, &str, Field); 3] = [
        (
            "scopepilot_recording_frames_written_total",
            "Frames readable in the current (or last) recording.",
            |s| s.frames_written,
        ),
        (
            "scopepilot_recording_bytes_written_total",
            "Uncompressed pixel bytes readable in the current (or last) recording.",
            |s| s.bytes_written,
        ),
        (
            "scopepilot_recording_frames_not_recorded_total",
            "Frames that reached the recording but are not in the store (never silent).",
            |s| s.frames_not_recorded,
        ),
    ];
    for (name, help, field) in per_stream {
        p.family(name, Counter, help);
        for s in &r.streams {
            p.sample(name, &[("stream", &s.name)], field(s) as f64);
        }
    }
    for (name, help, value) in [
        (
            "scopepilot_recording_backlog_frames",
            "Frames waiting to be written.",
            r.queue_frames as f64,
        ),
        (
            "scopepilot_recording_backlog_bytes",
            "Bytes waiting to be written.",
            r.queue_bytes as f64,
        ),
        (
            "scopepilot_recording_backlog_budget_bytes",
            "Memory budget of the write queue.",
            r.queue_budget_bytes as f64,
        ),
        (
            "scopepilot_recording_throughput_bytes_per_second",
            "Mean write throughput of the current (or last) recording (uncompressed bytes).",
            r.throughput_bytes_per_s(),
        ),
    ] {
        p.single(name, Gauge, help, value);
    }
}

fn write_events(p: &mut PromText, status: &Status, rules: &[RuleStatus]) {
    use MetricType::{Counter, Gauge};
    let e = &status.events;
    for (name, help, value) in [
        (
            "scopepilot_detections_total",
            "Detections the rule engine received from detect stages.",
            e.detections,
        ),
        (
            "scopepilot_detections_dropped_total",
            "Detections lost because the rule engine's queue was full.",
            e.detections_dropped,
        ),
        (
            "scopepilot_events_total",
            "Events published (ground truth included).",
            e.events,
        ),
        ("scopepilot_actions_total", "Actions published.", e.actions),
        (
            "scopepilot_actions_acknowledged_total",
            "Actions acknowledged as done.",
            e.actions_acknowledged,
        ),
        (
            "scopepilot_actions_failed_total",
            "Actions acknowledged as failed.",
            e.actions_failed,
        ),
        ("scopepilot_captures_total", "Captures started.", e.captures),
        (
            "scopepilot_capture_frames_missed_total",
            "Frames capture buffers could not copy.",
            e.capture_frames_missed,
        ),
    ] {
        p.single(name, Counter, help, value as f64);
    }
    type Field = fn(&RuleStatus) -> u64;
    let per_rule: [(&str, MetricType, &str, Field); 5] = [
        (
            "scopepilot_rule_events_matched_total",
            Counter,
            "Events that met a rule's filters.",
            |r| r.events_matched,
        ),
        (
            "scopepilot_rule_triggers_total",
            Counter,
            "Times a rule triggered.",
            |r| r.triggers,
        ),
        (
            "scopepilot_rule_suppressed_total",
            Counter,
            "Triggers withheld by a rule's cooldown or rate limit.",
            |r| r.suppressed,
        ),
        (
            "scopepilot_rule_releases_total",
            Counter,
            "Times a rule's effect ended.",
            |r| r.releases,
        ),
        (
            "scopepilot_rule_active",
            Gauge,
            "1 while a hysteresis rule is in its on state.",
            |r| r.active as u64,
        ),
    ];
    for (name, kind, help, field) in per_rule {
        p.family(name, kind, help);
        for r in rules {
            p.sample(name, &[("rule", &r.config.name)], field(r) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values_and_format_numbers() {
        let mut p = PromText::default();
        p.family("x_total", MetricType::Counter, "Help with \\ and\nnewline.");
        p.sample("x_total", &[("a", "q\"b\\c\nd"), ("b", "1")], 3.0);
        p.sample("x_total", &[], 0.25);
        let text = p.finish();
        assert_eq!(
            text,
            "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"b\\\\c\\nd\",b=\"1\"} 3\nx_total 0.25\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_the_count() {
        let h = crate::latency::LatencyHistogram::default();
        for us in [100u64, 1000, 1000, 50_000] {
            h.record(std::time::Duration::from_micros(us));
        }
        let mut p = PromText::default();
        p.histogram("lat_seconds", &[("stage", "raw")], &h.snapshot());
        let text = p.finish();
        assert!(text.contains("lat_seconds_bucket{stage=\"raw\",le=\"0.000064\"} 0\n"));
        assert!(text.contains("lat_seconds_bucket{stage=\"raw\",le=\"0.000096\"} 0\n"));
        assert!(text.contains("lat_seconds_bucket{stage=\"raw\",le=\"0.000112\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{stage=\"raw\",le=\"0.000128\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{stage=\"raw\",le=\"0.001024\"} 3\n"));
        assert!(text.contains("lat_seconds_bucket{stage=\"raw\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("lat_seconds_sum{stage=\"raw\"} 0.0521\n"));
        assert!(text.contains("lat_seconds_count{stage=\"raw\"} 4\n"));
    }
}
