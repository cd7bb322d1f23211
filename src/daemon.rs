//! `Daemon`: the acquisition state machine that the API (and tests) drive.
//!
//! It owns the configuration, the subscriber hubs of every stream (which outlive
//! acquisitions) and, while running, the source, the ingest ring and the pipeline. It knows
//! nothing of gRPC: the API layer maps its errors to status codes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{Config, SourceKind};
use crate::frame::FrameSpec;
use crate::inference::catalog::FoundPackage;
use crate::inference::{LoadedModel, ModelCatalog, ModelPackage, ModelSummary};
use crate::latency::HistogramSnapshot;
use crate::pipeline::{Pipeline, StageContext, StageInfo, Taps};
use crate::ring::{RingHandle, ingest_ring};
use crate::rules::RuleEngine;
use crate::rules::capture::CaptureSet;
use crate::rules::engine::EngineStatus;
use crate::rules::interval::IntervalGovernor;
use crate::sink::record::{RecordError, Recording, RecordingState, RecordingStatus};
use crate::sink::subscribers::{SubscriberHub, SubscriberInfo, Subscription};
use crate::source::camera_control::{CameraControl, CameraControlError, CameraSettings};
use crate::source::push::{PushInput, PushResult, PushStats, PushedFrame};
use crate::source::replay::ReplaySource;
use crate::source::runner::{SourceStats, SourceThread};
use crate::source::simulated::SimulatedSource;
use crate::source::{FrameInterval, FrameSource, SourceError};

/// Version reported by `GetStatus`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a daemon operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Start while running.
    #[error("acquisition is already running (source {0}); call Stop first")]
    AlreadyRunning(&'static str),
    /// Stop (or a running-only call) while idle.
    #[error("acquisition is not running; call Start first")]
    NotRunning,
    /// A stream name that does not exist.
    #[error("no stream named {name:?}; streams: {known}")]
    UnknownStream {
        /// Name asked for.
        name: String,
        /// Names that exist.
        known: String,
    },
    /// The request itself is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is valid but not in the current state or configuration.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something to create exists already (e.g. a recording's directory).
    #[error("{0}")]
    AlreadyExists(String),
    /// A model that is neither a path nor a known package.
    #[error("{0}")]
    ModelNotFound(String),
    /// The source could not be opened.
    #[error("source could not start: {0}")]
    Source(#[from] SourceError),
    /// A part of the daemon (e.g. the camera thread) did not answer in time; retry later.
    #[error("{0}")]
    Unavailable(String),
}

/// Acquisition state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquisitionState {
    /// Not acquiring.
    Idle,
    /// Acquiring.
    Running,
}

/// Counters of a run that remain readable after it stopped.
#[derive(Clone)]
struct RunView {
    kind: SourceKind,
    spec: Option<FrameSpec>,
    ring: RingHandle,
    ring_policy: &'static str,
    stages: Vec<StageInfo>,
    source: Option<Arc<SourceStats>>,
    push: Option<Arc<PushStats>>,
    started: Instant,
    stopped: Option<Instant>,
}

struct Run {
    view: RunView,
    source: Option<SourceThread>,
    /// Exposure and gain of the running camera, changed on its own thread.
    camera: Option<CameraControl>,
    push: Option<PushHandle>,
    pipeline: Pipeline,
}

/// Shared access to a running push source, for one client stream.
#[derive(Clone)]
pub struct PushHandle {
    input: Arc<Mutex<PushInput>>,
    closed: Arc<AtomicBool>,
}

impl PushHandle {
    /// Validate and queue one frame. Fails once the acquisition has stopped.
    pub fn push(&self, frame: &PushedFrame<'_>) -> Result<PushResult, DaemonError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DaemonError::FailedPrecondition(
                "acquisition stopped while frames were being pushed".into(),
            ));
        }
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        input.push(frame).map_err(DaemonError::InvalidArgument)
    }

    /// Refuse a frame the API layer could not even decode; counted like any rejected frame.
    pub fn reject(&self, problem: String) -> DaemonError {
        self.input
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count_rejected();
        DaemonError::InvalidArgument(problem)
    }
}

/// One stage's numbers in a status report.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStatus {
    /// Stream name.
    pub name: String,
    /// Stage kind (`source` for `raw`).
    pub kind: String,
    /// Input stream.
    pub input: String,
    /// Frames taken in.
    pub frames_in: u64,
    /// Frames emitted.
    pub frames_out: u64,
    /// Frames dropped by the input queue policy (by the ring, for `raw`).
    pub frames_dropped: u64,
    /// Frames that failed processing.
    pub errors: u64,
    /// Frames waiting in the input queue.
    pub queue_depth: u64,
    /// Input queue capacity.
    pub queue_capacity: u64,
    /// Input queue policy.
    pub queue_policy: String,
    /// Arrival-to-output latency, median, microseconds.
    pub latency_p50_us: f64,
    /// Arrival-to-output latency, 99th percentile, microseconds.
    pub latency_p99_us: f64,
    /// Processing time per frame, median, microseconds.
    pub process_p50_us: f64,
    /// Processing time per frame, 99th percentile, microseconds.
    pub process_p99_us: f64,
    /// Arrival-to-output latency, the whole histogram.
    pub latency: HistogramSnapshot,
    /// Processing time per frame, the whole histogram.
    pub process_time: HistogramSnapshot,
    /// The model of a learned stage.
    pub model: Option<Arc<ModelSummary>>,
    /// Synthetic frames among `frames_out`.
    pub frames_synthetic: u64,
    /// Intervals not interpolated because input frames were missing across them.
    pub gaps_skipped: u64,
}

/// One model in `ListModels`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// Package path.
    pub path: PathBuf,
    /// Package name (empty when the package cannot be read).
    pub name: String,
    /// Description format.
    pub format: String,
    /// What the model does.
    pub description: String,
    /// Why the package cannot be used, if it cannot.
    pub problem: Option<String>,
    /// Stages running it now.
    pub used_by: Vec<String>,
    /// What loading it reported, once loaded.
    pub loaded: Option<ModelSummary>,
}

/// Everything `GetStatus` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Running or idle.
    pub state: AcquisitionState,
    /// Source of the current (or last) acquisition; empty before the first.
    pub source: String,
    /// Frame format of the current (or last) acquisition, once known.
    pub spec: Option<FrameSpec>,
    /// Current frame interval of paced sources.
    pub frame_interval: Duration,
    /// Frames the source delivered to scopepilot.
    pub frames_acquired: u64,
    /// Frames lost before the ring because every buffer was in use.
    pub frames_lost_no_buffer: u64,
    /// Frames the ring dropped by its overflow policy.
    pub frames_dropped_ring: u64,
    /// Frame slots the source missed because it could not keep its frame rate.
    pub frames_late: u64,
    /// Frames a camera lost before they reached scopepilot (gaps in its frame numbers).
    pub frames_missing: u64,
    /// Frames a camera delivered incomplete (missing packets, timeouts), discarded.
    pub frames_incomplete: u64,
    /// Frames in the ring now.
    pub ring_depth: u64,
    /// Ring capacity.
    pub ring_capacity: u64,
    /// Ring overflow policy.
    pub ring_policy: String,
    /// Pushed frames rejected as invalid.
    pub frames_rejected: u64,
    /// True when a pull source ran out of frames or failed.
    pub source_finished: bool,
    /// Times a pull source went quiet for longer than its stall threshold.
    pub source_stalls: u64,
    /// True while a pull source is stalled (no frame for longer than its stall threshold).
    pub source_stalled: bool,
    /// Time since a pull source's last frame (since its start, before the first); `None`
    /// without a pull source.
    pub since_last_frame: Option<Duration>,
    /// Per-stream numbers, `raw` first.
    pub stages: Vec<StageStatus>,
    /// Live subscribers.
    pub subscribers: Vec<SubscriberInfo>,
    /// Time since the daemon started.
    pub uptime: Duration,
    /// Duration of the current (or last) acquisition.
    pub acquisition_time: Duration,
    /// Daemon version.
    pub version: &'static str,
    /// The current (or last) recording.
    pub recording: Option<RecordingStatus>,
    /// Detections, events, actions and captures since the daemon started.
    pub events: EngineStatus,
}

enum State {
    Idle(Option<RunView>),
    Running(Run),
}

/// The acquisition daemon.
pub struct Daemon {
    config: Config,
    taps: Taps,
    interval: Arc<FrameInterval>,
    interval_set_by_client: AtomicBool,
    state: Mutex<State>,
    lifecycle: Mutex<()>,
    started: Instant,
    catalog: ModelCatalog,
    /// Models chosen over the API for stages (stage name -> package path); they replace the
    /// configured `params.model` from the next acquisition on.
    stage_models: Mutex<HashMap<String, PathBuf>>,
    /// The current or last recording (a stopped one stays for its status).
    recording: Mutex<Option<Arc<Recording>>>,
    /// Events, rules and their actions (owns the frame interval's governor).
    engine: RuleEngine,
    /// Camera settings changed over the API; they replace the configured ones from the
    /// next acquisition on (and apply at once to a running camera where they can).
    camera_settings: Mutex<CameraSettings>,
}

/// What [`Daemon::set_camera_settings`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraSettingsOutcome {
    /// Running: what the camera reports after the change. Idle: what the next start applies.
    pub settings: CameraSettings,
    /// Whether a running camera applied them now (otherwise they wait for the next start).
    pub applied: bool,
}

/// How long a settings change may wait for the camera thread.
const CAMERA_SETTINGS_TIMEOUT: Duration = Duration::from_secs(5);

impl Daemon {
    /// A daemon for a validated `config`. Nothing runs until [`Daemon::start`]; the rule
    /// engine starts now, with the configured rules.
    pub fn new(config: Config) -> Result<Arc<Self>, DaemonError> {
        let interval = FrameInterval::from_rate_hz(config.source.simulated.frame_rate_hz);
        let taps = Taps::new(&config.stages);
        let engine = RuleEngine::start(
            config.rule_context(),
            &config.rules,
            Arc::new(IntervalGovernor::new(interval.clone())),
            CaptureSet::new(taps.clone(), config.recording.clone()),
        )
        .map_err(|(i, e)| DaemonError::InvalidArgument(format!("rules[{i}].{e}")))?;
        Ok(Arc::new(Self {
            engine,
            taps,
            catalog: ModelCatalog::new(config.models.search_paths.clone()),
            config,
            interval,
            interval_set_by_client: AtomicBool::new(false),
            state: Mutex::new(State::Idle(None)),
            lifecycle: Mutex::new(()),
            started: Instant::now(),
            stage_models: Mutex::new(HashMap::new()),
            recording: Mutex::new(None),
            camera_settings: Mutex::new(CameraSettings::default()),
        }))
    }

    /// Events, rules and actions.
    pub fn rules(&self) -> &RuleEngine {
        &self.engine
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn configured_rate(&self, kind: SourceKind) -> Option<f64> {
        match kind {
            SourceKind::Simulated => Some(self.config.source.simulated.frame_rate_hz),
            SourceKind::Replay => self.config.source.replay.as_ref().map(|r| r.frame_rate_hz),
            SourceKind::Genicam => self.config.source.genicam.as_ref().map(|g| g.frame_rate_hz),
            SourceKind::Push => None,
        }
    }

    /// Start acquiring from `source` (a source kind name) or the configured default.
    pub fn start(&self, source: Option<&str>) -> Result<(), DaemonError> {
        let _transition = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if let State::Running(run) = &*self.state() {
            return Err(DaemonError::AlreadyRunning(run.view.kind.name()));
        }
        let kind = match source.filter(|s| !s.is_empty()) {
            None => self.config.source.kind,
            Some(name) => SourceKind::parse(name).ok_or_else(|| {
                DaemonError::InvalidArgument(format!(
                    "unknown source {name:?}; use simulated, replay, push or genicam"
                ))
            })?,
        };
        if !self.interval_set_by_client.load(Ordering::Relaxed)
            && let Some(rate) = self.configured_rate(kind)
        {
            let _ = self
                .engine
                .governor()
                .set_base(Duration::from_secs_f64(1.0 / rate));
        }
        // Open the source first: a bad file or setting fails before any thread starts.
        let pull_source = match kind {
            SourceKind::Push => None,
            SourceKind::Simulated | SourceKind::Replay | SourceKind::Genicam => {
                Some(self.open_pull_source(kind)?)
            }
        };
        let acq = &self.config.acquisition;
        let (producer, consumer) = ingest_ring(acq.ring_capacity, acq.ring_policy);
        let ring = producer.stats();
        let pipeline = Pipeline::start(
            consumer,
            acq.ring_policy.name(),
            acq.ring_capacity,
            &self.stage_configs(),
            &StageContext {
                inference: self.config.inference.clone(),
                events: Some(self.engine.sender()),
            },
            &self.taps,
        )
        .map_err(|e| DaemonError::FailedPrecondition(e.to_string()))?;
        for slot in pipeline.infos().iter().filter_map(|i| i.model.as_ref()) {
            self.catalog.record((*slot.current()).clone());
        }
        self.engine.set_paced(kind != SourceKind::Push);
        self.engine.acquisition_started();
        let camera = pull_source.as_ref().and_then(|s| s.camera_control());
        let (source_thread, push, spec) = match pull_source {
            None => {
                let input = PushInput::new(self.config.source.push, producer);
                let handle = PushHandle {
                    input: Arc::new(Mutex::new(input)),
                    closed: Arc::new(AtomicBool::new(false)),
                };
                (None, Some(handle), None)
            }
            Some(source) => {
                let spec = source.spec();
                let thread =
                    SourceThread::spawn(source, producer, acq.pool_frames(), self.interval.clone())
                        .map_err(|e| {
                            DaemonError::FailedPrecondition(format!(
                                "cannot start the camera thread: {e}"
                            ))
                        })?;
                (Some(thread), None, Some(spec))
            }
        };
        let view = RunView {
            kind,
            spec,
            ring,
            ring_policy: acq.ring_policy.name(),
            stages: pipeline.infos().to_vec(),
            source: source_thread.as_ref().map(|t| t.stats()),
            push: push
                .as_ref()
                .map(|p| p.input.lock().unwrap_or_else(|e| e.into_inner()).stats()),
            started: Instant::now(),
            stopped: None,
        };
        tracing::info!(
            source = kind.name(),
            format = %spec.map(|s| s.to_string()).unwrap_or_else(|| "set by the first pushed frame".into()),
            interval_ms = self.interval.get().as_secs_f64() * 1e3,
            stages = self.config.stages.len(),
            "acquisition started"
        );
        *self.state() = State::Running(Run {
            view,
            source: source_thread,
            camera,
            push,
            pipeline,
        });
        Ok(())
    }

    /// The configured stages, with the models chosen over the API in place.
    fn stage_configs(&self) -> Vec<crate::pipeline::StageConfig> {
        let chosen = self.stage_models.lock().unwrap_or_else(|e| e.into_inner());
        let mut stages = self.config.stages.clone();
        for s in &mut stages {
            if let Some(path) = chosen.get(&s.name) {
                s.params.insert(
                    "model".into(),
                    toml::Value::String(path.to_string_lossy().into_owned()),
                );
            }
        }
        stages
    }

    /// Models in the configured folders and every model loaded so far, with the stages that
    /// run them now.
    pub fn list_models(&self) -> Vec<ModelEntry> {
        let running: Vec<(String, Arc<ModelSummary>)> = match &*self.state() {
            State::Running(run) => run
                .view
                .stages
                .iter()
                .filter_map(|s| s.model.as_ref().map(|m| (s.name.clone(), m.current())))
                .collect(),
            State::Idle(_) => Vec::new(),
        };
        let mut found = self.catalog.scan();
        for path in self.catalog.loaded_paths() {
            if !found.iter().any(|f| ModelCatalog::same(&f.path, &path)) {
                found.push(FoundPackage {
                    package: ModelPackage::open(&path).map_err(|e| e.to_string()),
                    path,
                });
            }
        }
        found
            .into_iter()
            .map(|f| {
                let used_by = running
                    .iter()
                    .filter(|(_, m)| ModelCatalog::same(&m.path, &f.path))
                    .map(|(stage, _)| stage.clone())
                    .collect();
                let (name, format, description, problem) = match &f.package {
                    Ok(p) => (
                        p.name.clone(),
                        p.format.clone(),
                        p.description.clone(),
                        None,
                    ),
                    Err(e) => (String::new(), String::new(), String::new(), Some(e.clone())),
                };
                ModelEntry {
                    loaded: self.catalog.loaded(&f.path),
                    path: f.path,
                    name,
                    format,
                    description,
                    problem,
                    used_by,
                }
            })
            .collect()
    }

    /// Load `model` (a path or a package name) and run its self-test; with `stage`, switch
    /// that denoise stage to it (now if acquiring, and for later acquisitions). Returns what
    /// was loaded and whether a running stage took it. Blocks while the model loads.
    pub fn load_model(
        &self,
        model: &str,
        stage: Option<&str>,
        tile: usize,
    ) -> Result<(ModelSummary, bool), DaemonError> {
        let channels = match stage {
            Some(name) => Some(self.model_channels_of_stage(name)?),
            None => None,
        };
        let path = self
            .catalog
            .resolve(model)
            .map_err(DaemonError::ModelNotFound)?;
        let loaded = LoadedModel::open(&path, tile, &self.config.inference)
            .map_err(|e| DaemonError::InvalidArgument(e.to_string()))?;
        let summary = loaded.summary();
        self.catalog.record(summary.clone());
        tracing::info!(model = %summary.name, path = %path.display(), stage, self_test = ?summary.self_test, "model loaded");
        let (Some(name), Some(channels)) = (stage, channels) else {
            return Ok((summary, false));
        };
        if loaded.input_channels() != channels {
            return Err(DaemonError::InvalidArgument(format!(
                "model {:?} takes {} input channel(s) {:?}; stage {name:?} runs models of {channels}",
                summary.name,
                loaded.input_channels(),
                loaded.package().input_channels
            )));
        }
        self.stage_models
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), path);
        let slot = match &*self.state() {
            State::Running(run) => run
                .view
                .stages
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.model.clone()),
            State::Idle(_) => None,
        };
        match slot {
            Some(slot) => {
                slot.replace(loaded).map_err(DaemonError::InvalidArgument)?;
                Ok((summary, true))
            }
            None => Ok((summary, false)),
        }
    }

    /// Input channels of the models the configured stage `name` runs, or why it runs none.
    fn model_channels_of_stage(&self, name: &str) -> Result<usize, DaemonError> {
        let Some(cfg) = self.config.stages.iter().find(|s| s.name == name) else {
            return Err(DaemonError::UnknownStream {
                name: name.into(),
                known: self.taps.names().join(", "),
            });
        };
        cfg.model_channels().ok_or_else(|| {
            DaemonError::InvalidArgument(format!(
                "stage {name:?} is a {} stage that runs no model; models run in denoise stages and in interpolate stages configured with params.model",
                cfg.kind.name()
            ))
        })
    }

    fn open_pull_source(&self, kind: SourceKind) -> Result<Box<dyn FrameSource>, DaemonError> {
        Ok(match kind {
            SourceKind::Simulated => Box::new(
                SimulatedSource::new(self.config.source.simulated.clone(), self.interval.clone())?
                    .with_ground_truth(self.engine.sender()),
            ),
            SourceKind::Replay => {
                let cfg = self.config.source.replay.as_ref().ok_or_else(|| {
                    DaemonError::FailedPrecondition(
                        "the replay source needs a [source.replay] section with a path".into(),
                    )
                })?;
                Box::new(ReplaySource::new(cfg, self.interval.clone())?)
            }
            SourceKind::Genicam => self.open_genicam()?,
            SourceKind::Push => unreachable!("push is not a pull source"),
        })
    }

    #[cfg(feature = "genicam")]
    fn open_genicam(&self) -> Result<Box<dyn FrameSource>, DaemonError> {
        let cfg = self.config.source.genicam.as_ref().ok_or_else(|| {
            DaemonError::FailedPrecondition(
                "the genicam source needs a [source.genicam] section (address = \"<camera IP>\")"
                    .into(),
            )
        })?;
        let changed = *self
            .camera_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(Box::new(crate::source::genicam::GenicamSource::open(
            &cfg.clone().with_settings(changed),
            self.interval.clone(),
        )?))
    }

    #[cfg(not(feature = "genicam"))]
    fn open_genicam(&self) -> Result<Box<dyn FrameSource>, DaemonError> {
        Err(DaemonError::FailedPrecondition(
            crate::source::genicam::NOT_BUILT.into(),
        ))
    }

    /// Stop acquiring: the source stops first, then the pipeline drains what is queued.
    pub fn stop(&self) -> Result<Status, DaemonError> {
        let _transition = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let mut run = {
            let mut state = self.state();
            let State::Running(_) = &*state else {
                return Err(DaemonError::NotRunning);
            };
            let State::Running(run) = std::mem::replace(&mut *state, State::Idle(None)) else {
                unreachable!()
            };
            run
        };
        if let Some(p) = &run.push {
            p.closed.store(true, Ordering::Release);
        }
        if let Some(s) = run.source.take() {
            s.stop();
        }
        drop(run.push.take()); // the ring producer goes with it
        run.pipeline.stop();
        self.engine.acquisition_stopped();
        // Everything the pipeline drained has been published: the recording can finish.
        let recording = self.recording_slot().clone();
        if let Some(rec) = recording {
            rec.stop();
        }
        run.view.stopped = Some(Instant::now());
        *self.state() = State::Idle(Some(run.view));
        let status = self.status();
        tracing::info!(
            source = %status.source,
            frames_acquired = status.frames_acquired,
            dropped_ring = status.frames_dropped_ring,
            lost_no_buffer = status.frames_lost_no_buffer,
            seconds = status.acquisition_time.as_secs_f64(),
            "acquisition stopped"
        );
        Ok(status)
    }

    fn recording_slot(&self) -> MutexGuard<'_, Option<Arc<Recording>>> {
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start recording `streams` (empty = `raw`) to `<recording.root>/<name>.zarr`. Needs a
    /// running acquisition; the recording ends with `stop_recording` or when the
    /// acquisition stops. The acquisition is never disturbed, whatever the outcome.
    pub fn start_recording(
        &self,
        name: &str,
        streams: &[String],
    ) -> Result<RecordingStatus, DaemonError> {
        let _transition = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        crate::sink::record::check_name(name).map_err(DaemonError::InvalidArgument)?;
        let wanted: Vec<String> = if streams.is_empty() {
            vec![crate::pipeline::RAW.to_string()]
        } else {
            streams.to_vec()
        };
        let hubs = wanted
            .iter()
            .map(|n| {
                self.taps.get(n).cloned().ok_or_else(|| {
                    DaemonError::InvalidArgument(format!(
                        "no stream named {n:?} to record; streams: {}",
                        self.taps.names().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let interval = match &*self.state() {
            State::Idle(_) => {
                return Err(DaemonError::FailedPrecondition(
                    "acquisition is not running; call Start before StartRecording".into(),
                ));
            }
            State::Running(run) if run.view.kind == SourceKind::Push => None,
            State::Running(_) => Some(self.interval.get()),
        };
        let mut slot = self.recording_slot();
        if let Some(rec) = slot.as_ref() {
            let st = rec.status();
            if st.state == RecordingState::Recording {
                return Err(DaemonError::FailedPrecondition(format!(
                    "recording {:?} is in progress; call StopRecording first",
                    st.name
                )));
            }
            rec.stop(); // a failed one: finish it before replacing it
        }
        let rec =
            Recording::start(&self.config.recording, name, hubs, interval).map_err(
                |e| match e {
                    RecordError::InvalidArgument(m) => DaemonError::InvalidArgument(m),
                    e @ RecordError::AlreadyExists(_) => DaemonError::AlreadyExists(e.to_string()),
                    e @ RecordError::NotWritable { .. } => {
                        DaemonError::FailedPrecondition(e.to_string())
                    }
                },
            )?;
        let status = rec.status();
        *slot = Some(Arc::new(rec));
        Ok(status)
    }

    /// Stop the recording: everything queued is written and the store finalised.
    pub fn stop_recording(&self) -> Result<RecordingStatus, DaemonError> {
        let _transition = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.recording_slot().clone();
        match current {
            Some(rec) if !rec.is_finalised() => Ok(rec.stop()),
            _ => Err(DaemonError::FailedPrecondition(
                "no recording in progress; call StartRecording first".into(),
            )),
        }
    }

    /// Change the frame interval of paced sources (takes effect from the next frame).
    pub fn set_frame_interval(&self, interval: Duration) -> Result<(), DaemonError> {
        if let State::Running(run) = &*self.state()
            && run.view.kind == SourceKind::Push
        {
            return Err(DaemonError::FailedPrecondition(
                "the push source's frame timing is set by the client that pushes frames".into(),
            ));
        }
        self.engine
            .governor()
            .set_base(interval)
            .map_err(DaemonError::InvalidArgument)?;
        self.interval_set_by_client.store(true, Ordering::Relaxed);
        tracing::info!(
            interval_ms = interval.as_secs_f64() * 1e3,
            "frame interval changed"
        );
        Ok(())
    }

    /// Change the camera's exposure, gain, region or binning (the genicam source).
    ///
    /// While a camera runs, exposure and gain apply from the next frame and the outcome is
    /// what the camera reports; region and binning change the frame size the pipeline was
    /// built for, so they are refused until the acquisition stops. While idle, everything is
    /// kept for the next start. Every change is kept for later acquisitions as well. An
    /// empty `changes` reads the settings back.
    pub fn set_camera_settings(
        &self,
        changes: CameraSettings,
    ) -> Result<CameraSettingsOutcome, DaemonError> {
        let Some(configured) = &self.config.source.genicam else {
            return Err(DaemonError::FailedPrecondition(
                "camera settings apply to the genicam source, and this configuration has no \
                 [source.genicam] section"
                    .into(),
            ));
        };
        if let Some((key, problem)) = changes.problems().into_iter().next() {
            return Err(DaemonError::InvalidArgument(format!("{key}: {problem}")));
        }
        let running = match &*self.state() {
            State::Idle(_) => None,
            State::Running(run) => Some(run.camera.clone().ok_or_else(|| {
                DaemonError::FailedPrecondition(format!(
                    "the running source ({}) has no camera settings; they apply to the \
                     genicam source",
                    run.view.kind.name()
                ))
            })?),
        };
        let Some(camera) = running else {
            let mut kept = self
                .camera_settings
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let merged = kept.merged(changes);
            let next = configured.clone().with_settings(merged);
            if let Some((key, problem)) = next.problems().into_iter().next() {
                return Err(DaemonError::InvalidArgument(format!("{key}: {problem}")));
            }
            *kept = merged;
            return Ok(CameraSettingsOutcome {
                settings: next.settings(),
                applied: false,
            });
        };
        if changes.changes_frame_size() {
            return Err(DaemonError::FailedPrecondition(
                "roi and binning change the frame size the running pipeline is built for: \
                 stop the acquisition, change them, then start again"
                    .into(),
            ));
        }
        // The state lock is not held while the camera thread works on it.
        let now = camera
            .apply(changes, CAMERA_SETTINGS_TIMEOUT)
            .map_err(|e| match e {
                CameraControlError::Rejected(_) => DaemonError::InvalidArgument(e.to_string()),
                CameraControlError::Stopped => DaemonError::FailedPrecondition(e.to_string()),
                CameraControlError::Timeout(_) => DaemonError::Unavailable(e.to_string()),
            })?;
        let mut kept = self
            .camera_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *kept = kept.merged(changes);
        Ok(CameraSettingsOutcome {
            settings: now,
            applied: true,
        })
    }

    /// A handle for pushing frames into the running push source.
    pub fn push_handle(&self) -> Result<PushHandle, DaemonError> {
        match &*self.state() {
            State::Running(Run { push: Some(p), .. }) => Ok(p.clone()),
            State::Running(run) => Err(DaemonError::FailedPrecondition(format!(
                "the running source is {:?}; start the acquisition with source \"push\" to push frames",
                run.view.kind.name()
            ))),
            State::Idle(_) => Err(DaemonError::FailedPrecondition(
                "acquisition is not running; call Start with source \"push\" first".into(),
            )),
        }
    }

    /// Names of all streams, `raw` first.
    pub fn streams(&self) -> Vec<String> {
        self.taps.names()
    }

    /// Attach `sink` to stream `name`: it is offered every frame published from now on, in
    /// this and later acquisitions, until [`Daemon::detach_sink`].
    pub fn attach_sink(
        &self,
        name: &str,
        sink: Arc<dyn crate::sink::FrameSink>,
    ) -> Result<u64, DaemonError> {
        Ok(self.hub(name)?.attach(sink))
    }

    /// Detach the sink `id` of stream `name` (a no-op when it is not attached).
    pub fn detach_sink(&self, name: &str, id: u64) {
        if let Some(hub) = self.taps.get(name) {
            hub.detach(id);
        }
    }

    fn hub(&self, name: &str) -> Result<&Arc<SubscriberHub>, DaemonError> {
        self.taps
            .get(name)
            .ok_or_else(|| DaemonError::UnknownStream {
                name: name.into(),
                known: self.taps.names().join(", "),
            })
    }

    /// Subscribe to stream `name` with a queue of `capacity` frames (0 = configured default).
    pub fn subscribe(&self, name: &str, capacity: usize) -> Result<Subscription, DaemonError> {
        self.subscribe_at_most(name, capacity, None)
    }

    /// [`Daemon::subscribe`] taking at most `max_fps` frames per second (None = every frame).
    pub fn subscribe_at_most(
        &self,
        name: &str,
        capacity: usize,
        max_fps: Option<f64>,
    ) -> Result<Subscription, DaemonError> {
        let range = crate::sink::subscribers::MAX_FPS_RANGE;
        if let Some(r) = max_fps
            && !range.contains(&r)
        {
            return Err(DaemonError::InvalidArgument(format!(
                "max_fps must be {} to {} frames per second (or 0 for every frame), got {r}",
                range.start(),
                range.end()
            )));
        }
        let hub = self.hub(name)?;
        let s = &self.config.subscribers;
        let capacity = if capacity == 0 {
            s.queue_capacity
        } else {
            capacity
        };
        if capacity > s.max_queue_capacity {
            return Err(DaemonError::InvalidArgument(format!(
                "queue_capacity {capacity} exceeds the maximum of {} (subscribers.max_queue_capacity)",
                s.max_queue_capacity
            )));
        }
        Ok(hub.subscribe_at_most(capacity, max_fps))
    }

    /// Current state and counters.
    pub fn status(&self) -> Status {
        let state = self.state();
        let (acq_state, view) = match &*state {
            State::Idle(v) => (AcquisitionState::Idle, v.clone()),
            State::Running(r) => (AcquisitionState::Running, Some(r.view.clone())),
        };
        drop(state);
        let subscribers = self.taps.all().iter().flat_map(|h| h.infos()).collect();
        let mut status = Status {
            state: acq_state,
            source: String::new(),
            spec: None,
            frame_interval: self.interval.get(),
            frames_acquired: 0,
            frames_lost_no_buffer: 0,
            frames_dropped_ring: 0,
            frames_late: 0,
            frames_missing: 0,
            frames_incomplete: 0,
            ring_depth: 0,
            ring_capacity: self.config.acquisition.ring_capacity as u64,
            ring_policy: self.config.acquisition.ring_policy.name().into(),
            frames_rejected: 0,
            source_finished: false,
            source_stalls: 0,
            source_stalled: false,
            since_last_frame: None,
            stages: Vec::new(),
            subscribers,
            uptime: self.started.elapsed(),
            acquisition_time: Duration::ZERO,
            version: VERSION,
            recording: self.recording_slot().clone().map(|r| r.status()),
            events: self.engine.status(),
        };
        let Some(v) = view else {
            return status;
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        status.source = v.kind.name().into();
        status.spec = v.spec;
        let ring = v.ring.counters();
        status.frames_dropped_ring = ring.dropped();
        status.ring_depth = v.ring.depth() as u64;
        status.ring_capacity = v.ring.capacity() as u64;
        status.ring_policy = v.ring_policy.into();
        if let Some(src) = &v.source {
            status.frames_acquired = load(&src.captured);
            status.frames_lost_no_buffer = load(&src.lost_no_buffer);
            status.frames_late = load(&src.late);
            status.frames_missing = load(&src.missing);
            status.frames_incomplete = load(&src.incomplete);
            status.source_finished = src.finished.load(Ordering::Relaxed);
            status.source_stalls = load(&src.stalls);
            status.source_stalled = src.stalled.load(Ordering::Relaxed);
            status.since_last_frame = Some(src.since_last_frame());
        }
        if let Some(push) = &v.push {
            status.frames_acquired = load(&push.accepted);
            status.frames_lost_no_buffer = load(&push.lost_no_buffer);
            status.frames_rejected = load(&push.rejected);
            status.spec = push.format();
        }
        status.acquisition_time = v.stopped.unwrap_or_else(Instant::now) - v.started;
        status.stages = v
            .stages
            .iter()
            .map(|s| {
                let st = &s.stats;
                let dropped = if s.name == crate::pipeline::RAW {
                    ring.dropped()
                } else {
                    load(&st.dropped)
                };
                let depth = if s.name == crate::pipeline::RAW {
                    v.ring.depth() as u64
                } else {
                    st.queue_depth()
                };
                StageStatus {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    input: s.input.clone(),
                    frames_in: load(&st.frames_in),
                    frames_out: load(&st.frames_out),
                    frames_dropped: dropped,
                    errors: load(&st.errors),
                    queue_depth: depth,
                    queue_capacity: s.queue_capacity,
                    queue_policy: s.queue_policy.clone(),
                    latency_p50_us: st.latency.quantile_us(0.5),
                    latency_p99_us: st.latency.quantile_us(0.99),
                    process_p50_us: st.process_time.quantile_us(0.5),
                    process_p99_us: st.process_time.quantile_us(0.99),
                    latency: st.latency.snapshot(),
                    process_time: st.process_time.snapshot(),
                    model: s.model.as_ref().map(|m| m.current()),
                    frames_synthetic: load(&st.synthetic_out),
                    gaps_skipped: load(&st.gaps_skipped),
                }
            })
            .collect();
        status
    }

    /// Start a thread that logs a warning whenever frames were dropped since its last look
    /// (at most every `period`), so that no loss goes unseen in the logs.
    pub fn spawn_drop_monitor(self: &Arc<Self>, period: Duration) {
        let daemon = Arc::downgrade(self);
        let _ = std::thread::Builder::new().name("drop-monitor".into()).spawn(move || {
            let mut last: Vec<(String, u64)> = Vec::new();
            loop {
                std::thread::sleep(period);
                let Some(d) = daemon.upgrade() else { break };
                let now = drop_counters(&d.status());
                for (what, total) in &now {
                    let before = last.iter().find(|(w, _)| w == what).map_or(0, |(_, n)| *n);
                    if *total > before {
                        tracing::warn!(what = %what, new = total - before, total, "frames dropped");
                    }
                }
                last = now;
            }
        });
    }
}

/// Every drop counter of a status, labelled.
fn drop_counters(s: &Status) -> Vec<(String, u64)> {
    let mut out = vec![
        ("ring".to_string(), s.frames_dropped_ring),
        ("source buffers".to_string(), s.frames_lost_no_buffer),
        (
            "late frames (source below its frame rate)".to_string(),
            s.frames_late,
        ),
        (
            "camera frames missing (never arrived)".to_string(),
            s.frames_missing,
        ),
        (
            "camera frames incomplete (discarded)".to_string(),
            s.frames_incomplete,
        ),
    ];
    out.extend(
        s.stages
            .iter()
            .skip(1)
            .map(|st| (format!("stage {}", st.name), st.frames_dropped)),
    );
    if let Some(r) = &s.recording {
        out.push((format!("recording {}", r.name), r.frames_not_recorded()));
    }
    out.push((
        "detections (rule engine queue full)".to_string(),
        s.events.detections_dropped,
    ));
    out.push((
        "capture buffer frames".to_string(),
        s.events.capture_frames_missed,
    ));
    out.extend(s.subscribers.iter().map(|sub| {
        (
            format!("subscriber {} ({})", sub.id, sub.stage),
            sub.dropped,
        )
    }));
    out
}
