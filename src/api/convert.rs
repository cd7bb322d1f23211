//! Conversions between the daemon's types and the generated protobuf types, and the mapping
//! of daemon errors to gRPC status codes.

use tonic::Status;

use crate::clock::WallClock;
use crate::daemon::{AcquisitionState, DaemonError, ModelEntry};
use crate::events::Event;
use crate::frame::PixelType;
use crate::inference::ModelSummary;
use crate::proto;
use crate::rules::{Action, ActionPhase};
use crate::source::camera_control::CameraSettings;

impl From<DaemonError> for Status {
    fn from(e: DaemonError) -> Self {
        let msg = e.to_string();
        match e {
            DaemonError::InvalidArgument(_) => Status::invalid_argument(msg),
            DaemonError::UnknownStream { .. } | DaemonError::ModelNotFound(_) => {
                Status::not_found(msg)
            }
            DaemonError::AlreadyExists(_) => Status::already_exists(msg),
            DaemonError::AlreadyRunning(_)
            | DaemonError::NotRunning
            | DaemonError::FailedPrecondition(_)
            | DaemonError::Source(_) => Status::failed_precondition(msg),
            DaemonError::Unavailable(_) => Status::unavailable(msg),
        }
    }
}

/// Camera settings of a request (unset fields stay unset).
pub fn camera_settings_from_proto(p: proto::CameraSettings) -> CameraSettings {
    CameraSettings {
        exposure_us: p.exposure_us,
        gain: p.gain,
        roi: p.roi.map(|r| [r.x, r.y, r.width, r.height]),
        binning: p.binning,
    }
}

/// Protobuf camera settings (unknown fields unset).
pub fn camera_settings_to_proto(s: &CameraSettings) -> proto::CameraSettings {
    proto::CameraSettings {
        exposure_us: s.exposure_us,
        gain: s.gain,
        roi: s.roi.map(|[x, y, width, height]| proto::Region {
            x,
            y,
            width,
            height,
        }),
        binning: s.binning,
    }
}

/// Protobuf pixel type of a frame pixel type.
pub fn pixel_type_to_proto(p: PixelType) -> proto::PixelType {
    match p {
        PixelType::U8 => proto::PixelType::U8,
        PixelType::U16 => proto::PixelType::U16,
        PixelType::F32 => proto::PixelType::F32,
    }
}

/// Frame pixel type of a protobuf enum value, or a message saying what is wrong.
pub fn pixel_type_from_proto(value: i32) -> Result<PixelType, String> {
    match proto::PixelType::try_from(value) {
        Ok(proto::PixelType::U8) => Ok(PixelType::U8),
        Ok(proto::PixelType::U16) => Ok(PixelType::U16),
        Ok(proto::PixelType::F32) => Ok(PixelType::F32),
        Ok(proto::PixelType::Unspecified) => {
            Err("pixel_type is not set (use U8, U16 or F32)".into())
        }
        Err(_) => Err(format!(
            "unknown pixel_type {value} (use U8 = 1, U16 = 2 or F32 = 3)"
        )),
    }
}

/// Protobuf form of a status report.
pub fn status_to_proto(s: &crate::daemon::Status) -> proto::GetStatusResponse {
    proto::GetStatusResponse {
        state: match s.state {
            AcquisitionState::Idle => proto::AcquisitionState::Idle,
            AcquisitionState::Running => proto::AcquisitionState::Running,
        } as i32,
        source: s.source.clone(),
        width: s.spec.map_or(0, |x| x.width),
        height: s.spec.map_or(0, |x| x.height),
        pixel_type: s.spec.map_or(proto::PixelType::Unspecified, |x| {
            pixel_type_to_proto(x.pixel_type)
        }) as i32,
        frame_interval_us: s.frame_interval.as_micros() as u64,
        frames_acquired: s.frames_acquired,
        frames_lost_no_buffer: s.frames_lost_no_buffer,
        frames_dropped_ring: s.frames_dropped_ring,
        frames_late: s.frames_late,
        source_stalls: s.source_stalls,
        source_stalled: s.source_stalled,
        seconds_since_last_frame: s.since_last_frame.map(|d| d.as_secs_f64()),
        frames_missing: s.frames_missing,
        frames_incomplete: s.frames_incomplete,
        recording: s.recording.as_ref().map(recording_to_proto),
        events: Some(proto::EventsStatus {
            detections: s.events.detections,
            detections_dropped: s.events.detections_dropped,
            events: s.events.events,
            actions: s.events.actions,
            actions_acknowledged: s.events.actions_acknowledged,
            actions_failed: s.events.actions_failed,
            captures: s.events.captures,
            capture_frames_missed: s.events.capture_frames_missed,
        }),
        ring_depth: s.ring_depth,
        ring_capacity: s.ring_capacity,
        ring_policy: s.ring_policy.clone(),
        frames_rejected: s.frames_rejected,
        source_finished: s.source_finished,
        stages: s
            .stages
            .iter()
            .map(|st| proto::StageStatus {
                name: st.name.clone(),
                kind: st.kind.clone(),
                input: st.input.clone(),
                frames_in: st.frames_in,
                frames_out: st.frames_out,
                frames_dropped: st.frames_dropped,
                errors: st.errors,
                queue_depth: st.queue_depth,
                queue_capacity: st.queue_capacity,
                queue_policy: st.queue_policy.clone(),
                latency_p50_us: st.latency_p50_us,
                latency_p99_us: st.latency_p99_us,
                process_p50_us: st.process_p50_us,
                process_p99_us: st.process_p99_us,
                model: st.model.as_deref().map(model_to_proto),
                frames_synthetic: st.frames_synthetic,
                gaps_skipped: st.gaps_skipped,
            })
            .collect(),
        subscribers: s
            .subscribers
            .iter()
            .map(|sub| proto::SubscriberStatus {
                id: sub.id,
                stage: sub.stage.clone(),
                frames_delivered: sub.delivered,
                frames_dropped: sub.dropped,
                queue_depth: sub.queue_depth,
                queue_capacity: sub.queue_capacity,
                frames_skipped: sub.skipped,
                max_fps: sub.max_fps.unwrap_or(0.0),
            })
            .collect(),
        uptime_s: s.uptime.as_secs_f64(),
        acquisition_time_s: s.acquisition_time.as_secs_f64(),
        version: s.version.to_string(),
    }
}

/// Protobuf form of a loaded model's summary.
pub fn model_to_proto(m: &ModelSummary) -> proto::LoadedModelInfo {
    proto::LoadedModelInfo {
        name: m.name.clone(),
        path: m.path.display().to_string(),
        format: m.format.clone(),
        description: m.description.clone(),
        input_tensor: m.tensors.0.clone(),
        output_tensor: m.tensors.1.clone(),
        halo: m.halo as u32,
        tile: m.tile as u32,
        preprocessing: m.preprocessing.clone(),
        postprocessing: m.postprocessing.clone(),
        provider_requested: m.provider.requested.name().into(),
        provider: m.provider.used.name().into(),
        provider_fallback_reason: m.provider.fallback_reason.clone().unwrap_or_default(),
        self_test: m.self_test.as_ref().map(|t| proto::SelfTest {
            height: t.size.0 as u32,
            width: t.size.1 as u32,
            max_abs_diff: t.max_abs_diff,
            mismatched: t.mismatched as u64,
        }),
    }
}

/// Protobuf form of a `ListModels` entry.
pub fn model_entry_to_proto(e: &ModelEntry) -> proto::ModelEntry {
    proto::ModelEntry {
        name: e.name.clone(),
        path: e.path.display().to_string(),
        format: e.format.clone(),
        description: e.description.clone(),
        problem: e.problem.clone().unwrap_or_default(),
        used_by_stages: e.used_by.clone(),
        loaded: e.loaded.as_ref().map(model_to_proto),
    }
}

/// Protobuf form of a recording's status.
pub fn recording_to_proto(r: &crate::sink::record::RecordingStatus) -> proto::RecordingStatus {
    use crate::sink::record::RecordingState as S;
    proto::RecordingStatus {
        name: r.name.clone(),
        path: r.path.display().to_string(),
        state: match r.state {
            S::Recording => proto::RecordingState::Recording,
            S::Stopped => proto::RecordingState::Stopped,
            S::Failed => proto::RecordingState::Failed,
        } as i32,
        error: r.error.clone().unwrap_or_default(),
        streams: r
            .streams
            .iter()
            .map(|s| proto::RecordedStream {
                name: s.name.clone(),
                frames_written: s.frames_written,
                bytes_written: s.bytes_written,
                frames_not_recorded: s.frames_not_recorded,
                frames_synthetic_skipped: s.frames_synthetic_skipped,
            })
            .collect(),
        frames_written: r.frames_written(),
        bytes_written: r.bytes_written(),
        frames_not_recorded: r.frames_not_recorded(),
        queue_frames: r.queue_frames,
        queue_bytes: r.queue_bytes,
        queue_budget_bytes: r.queue_budget_bytes,
        elapsed_s: r.elapsed.as_secs_f64(),
        throughput_bytes_per_s: r.throughput_bytes_per_s(),
        compression: r.compression.into(),
    }
}

/// Protobuf form of an event (Unix times through `clock`).
pub fn event_to_proto(e: &Event, clock: &WallClock) -> proto::Event {
    proto::Event {
        id: e.id,
        kind: e.kind.to_string(),
        detector: e.detector.to_string(),
        stream: e.stream.to_string(),
        frame_number: e.frame_number,
        timestamp_ns: e.timestamp_ns,
        x: e.x,
        y: e.y,
        bbox: Some(proto::Box {
            x: e.bbox.x,
            y: e.bbox.y,
            width: e.bbox.width,
            height: e.bbox.height,
        }),
        score: e.score,
        values: e.values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        frame_arrival_unix_ns: clock.unix_ns(e.frame_arrival) as i64,
        detected_unix_ns: clock.unix_ns(e.detected) as i64,
        ground_truth: e.ground_truth,
        subscriber_dropped: 0,
    }
}

/// Protobuf form of an action (Unix times through `clock`).
pub fn action_to_proto(a: &Action, clock: &WallClock) -> proto::Action {
    proto::Action {
        id: a.id,
        rule: a.rule.clone(),
        name: a.name.clone(),
        params: a.params.iter().cloned().collect(),
        phase: match a.phase {
            ActionPhase::Trigger => proto::ActionPhase::Trigger,
            ActionPhase::Release => proto::ActionPhase::Release,
        } as i32,
        dry_run: a.dry_run,
        executed_by_daemon: a.executed_by_daemon,
        event: a.event.as_ref().map(|e| event_to_proto(e, clock)),
        created_unix_ns: clock.unix_ns(a.created) as i64,
        subscriber_dropped: 0,
    }
}
