//! The streaming pipeline: the ingest ring feeds the `raw` stream, and stages, each on its own
//! thread behind a bounded input queue, transform streams into new named streams. The topology
//! is built from config: every stage names its `input` (`raw` or an earlier stage).
//!
//! ```text
//! camera thread -> ingest ring -> [raw] -> queue -> stage A -> [A] -> queue -> stage B -> [B]
//!                                    \-> subscribers        \-> subscribers     \-> ...
//! ```

pub mod denoise;
pub mod detect;
pub mod gaussian;
pub mod interpolate;
pub mod model_slot;
pub mod output;
pub mod passthrough;
pub mod queue;
pub mod stage;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde::Deserialize;

use self::denoise::{DenoiseParams, DenoiseStage};
use self::detect::{DetectParams, DetectStage, DetectorKind};
use self::gaussian::{GaussianParams, GaussianStage};
use self::interpolate::{InterpolateParams, InterpolateStage};
use self::model_slot::ModelSlot;
use self::output::Output;
use self::passthrough::PassthroughStage;
use self::queue::{QueueConfig, QueueSender, stage_queue};
use self::stage::{Emitter, Stage};
use self::stats::StageStats;
use crate::frame::Frame;
use crate::ring::IngestConsumer;
use crate::sink::subscribers::SubscriberHub;

/// Name of the stream of frames straight from the source.
pub const RAW: &str = "raw";

/// Kinds of stage that can be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Forward frames unchanged.
    Passthrough,
    /// Separable Gaussian blur.
    Gaussian,
    /// A learned image-to-image model (ONNX) such as a CARE / Noise2Void denoiser.
    Denoise,
    /// Content-aware frame interpolation: generated (synthetic) frames between measured ones.
    Interpolate,
    /// Event detection: frames pass through; events go to the rule engine.
    Detect,
}

impl StageKind {
    /// Name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Passthrough => "passthrough",
            StageKind::Gaussian => "gaussian",
            StageKind::Denoise => "denoise",
            StageKind::Interpolate => "interpolate",
            StageKind::Detect => "detect",
        }
    }
}

/// One `[[stages]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Name of the stage's output stream (what subscribers ask for).
    pub name: String,
    /// Kind of stage.
    pub kind: StageKind,
    /// Stream the stage reads: `raw` or an earlier stage's name (default: the previous stage,
    /// or `raw` for the first).
    #[serde(default)]
    pub input: Option<String>,
    /// Input queue size and policy.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Kind-specific parameters.
    #[serde(default)]
    pub params: toml::Table,
    /// Niceness of the stage's thread, 0 (normal) to 19 (only spare CPU). Default:
    /// [`LEARNED_STAGE_NICE`] for stages that run a model, 0 for the others.
    #[serde(default)]
    pub nice: Option<i32>,
}

/// Default niceness of a learned stage's thread. A model that cannot keep up would otherwise
/// take as much CPU as the camera, the ingest, the recording and the API; niced, it gets what
/// they leave, and its queue policy drops (and counts) what it cannot take.
pub const LEARNED_STAGE_NICE: i32 = 10;

/// A stage's settings could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct StageConfigError {
    /// Key relative to the stage entry (`params.sigma`, `input`, ...).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

fn params_of<T: for<'de> Deserialize<'de>>(params: &toml::Table) -> Result<T, StageConfigError> {
    T::deserialize(toml::Value::Table(params.clone())).map_err(|e| StageConfigError {
        key: "params".into(),
        problem: e.to_string().trim().to_string(),
    })
}

fn first_problem(problems: Vec<(&'static str, String)>) -> Result<(), StageConfigError> {
    match problems.into_iter().next() {
        Some((key, problem)) => Err(StageConfigError {
            key: format!("params.{key}"),
            problem,
        }),
        None => Ok(()),
    }
}

/// What stages may need from the rest of the configuration when they are built.
#[derive(Debug, Clone, Default)]
pub struct StageContext {
    /// ONNX Runtime settings, for learned stages.
    pub inference: crate::inference::InferenceConfig,
    /// Where detect stages send their detections (none: detections are only counted).
    pub events: Option<crate::events::EngineSender>,
}

impl StageConfig {
    /// Input channels of the models this stage runs (`None`: it runs no model).
    pub fn model_channels(&self) -> Option<usize> {
        match self.kind {
            StageKind::Denoise => Some(1),
            StageKind::Interpolate => params_of::<InterpolateParams>(&self.params)
                .ok()
                .filter(|p| p.resolved_method() == Ok(interpolate::InterpolationMethod::Model))
                .map(|_| interpolate::MODEL_CHANNELS),
            StageKind::Detect => params_of::<DetectParams>(&self.params)
                .ok()
                .filter(|p| p.detector == DetectorKind::Model)
                .map(|_| detect::MODEL_CHANNELS),
            StageKind::Passthrough | StageKind::Gaussian => None,
        }
    }

    /// The kind of the events of a detect stage (`None` for other stages or bad parameters).
    pub fn event_kind(&self) -> Option<String> {
        (self.kind == StageKind::Detect)
            .then(|| params_of::<DetectParams>(&self.params).ok())
            .flatten()
            .map(|p| p.event_kind())
    }

    /// `nice`, when given, is a niceness (0-19).
    fn check_nice(&self) -> Result<(), StageConfigError> {
        match self.nice {
            Some(nice) if !(0..=19).contains(&nice) => Err(StageConfigError {
                key: "nice".into(),
                problem: format!("must be 0 (normal priority) to 19 (lowest), got {nice}"),
            }),
            _ => Ok(()),
        }
    }

    /// Check the parameters without building the stage (no model is loaded).
    pub fn check(&self) -> Result<(), StageConfigError> {
        self.check_nice()?;
        match self.kind {
            StageKind::Passthrough | StageKind::Gaussian => {
                self.build(&StageContext::default()).map(drop)
            }
            StageKind::Denoise => {
                let p: DenoiseParams = params_of(&self.params)?;
                first_problem(p.problems())
            }
            StageKind::Interpolate => {
                let p: InterpolateParams = params_of(&self.params)?;
                first_problem(p.problems())
            }
            StageKind::Detect => {
                let p: DetectParams = params_of(&self.params)?;
                first_problem(p.problems())
            }
        }
    }

    /// Build the stage this entry describes, checking its parameters and loading its model.
    pub fn build(&self, ctx: &StageContext) -> Result<Box<dyn Stage>, StageConfigError> {
        self.check_nice()?;
        match self.kind {
            StageKind::Passthrough => {
                if !self.params.is_empty() {
                    return Err(StageConfigError {
                        key: "params".into(),
                        problem: "passthrough takes no parameters".into(),
                    });
                }
                Ok(Box::new(PassthroughStage))
            }
            StageKind::Gaussian => {
                let p: GaussianParams = params_of(&self.params)?;
                first_problem(p.problems())?;
                Ok(Box::new(GaussianStage::new(p)))
            }
            StageKind::Denoise => {
                let p: DenoiseParams = params_of(&self.params)?;
                first_problem(p.problems())?;
                let stage =
                    DenoiseStage::new(&p, &ctx.inference).map_err(|e| StageConfigError {
                        key: "params.model".into(),
                        problem: e.to_string(),
                    })?;
                Ok(Box::new(stage))
            }
            StageKind::Interpolate => {
                let p: InterpolateParams = params_of(&self.params)?;
                first_problem(p.problems())?;
                let stage =
                    InterpolateStage::new(&p, &ctx.inference).map_err(|e| StageConfigError {
                        key: "params.model".into(),
                        problem: e.to_string(),
                    })?;
                Ok(Box::new(stage))
            }
            StageKind::Detect => {
                let p: DetectParams = params_of(&self.params)?;
                first_problem(p.problems())?;
                let input = self.input.as_deref().unwrap_or(RAW);
                let stage =
                    DetectStage::new(&self.name, input, &p, &ctx.inference, ctx.events.clone())
                        .map_err(|e| StageConfigError {
                            key: "params.model".into(),
                            problem: e.to_string(),
                        })?;
                Ok(Box::new(stage))
            }
        }
    }
}

/// Why a pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A stage entry is invalid.
    #[error("stages[{index}].{error}")]
    Stage {
        /// Position in `[[stages]]`.
        index: usize,
        /// What is wrong.
        error: StageConfigError,
    },
    /// The taps were built for a different set of stages.
    #[error("no subscriber hub for stream {0:?}")]
    MissingTap(String),
    /// The OS refused a thread.
    #[error("cannot start thread {name}: {source}")]
    Spawn {
        /// Thread name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Stage entries with their inputs resolved, in order.
pub fn resolve_inputs(
    stages: &[StageConfig],
) -> Result<Vec<(String, String)>, (usize, StageConfigError)> {
    let mut known = vec![RAW.to_string()];
    let mut out = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        let err = |key: &str, problem: String| {
            (
                i,
                StageConfigError {
                    key: key.into(),
                    problem,
                },
            )
        };
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(
                "name",
                format!("{:?} must be non-empty letters, digits, '_' or '-'", s.name),
            ));
        }
        if known.contains(&s.name) {
            return Err(err(
                "name",
                format!("{:?} is already used (`raw` is the source stream)", s.name),
            ));
        }
        let input = s
            .input
            .clone()
            .unwrap_or_else(|| known.last().expect("raw").clone());
        if !known.contains(&input) {
            return Err(err(
                "input",
                format!(
                    "{input:?} is not `raw` or an earlier stage (known: {})",
                    known.join(", ")
                ),
            ));
        }
        if s.queue.capacity == 0 {
            return Err(err("queue.capacity", "must be at least 1".into()));
        }
        known.push(s.name.clone());
        out.push((s.name.clone(), input));
    }
    Ok(out)
}

/// The subscriber hubs of every stream; they outlive acquisitions.
#[derive(Clone)]
pub struct Taps {
    hubs: Vec<Arc<SubscriberHub>>,
}

impl Taps {
    /// Hubs for `raw` and every configured stage.
    pub fn new(stages: &[StageConfig]) -> Self {
        let ids = Arc::new(AtomicU64::new(0));
        let names = std::iter::once(RAW).chain(stages.iter().map(|s| s.name.as_str()));
        Self {
            hubs: names.map(|n| SubscriberHub::new(n, ids.clone())).collect(),
        }
    }

    /// The hub of stream `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<SubscriberHub>> {
        self.hubs.iter().find(|h| h.stage() == name)
    }

    /// All hubs, `raw` first.
    pub fn all(&self) -> &[Arc<SubscriberHub>] {
        &self.hubs
    }

    /// Names of all streams, `raw` first.
    pub fn names(&self) -> Vec<String> {
        self.hubs.iter().map(|h| h.stage().to_string()).collect()
    }
}

/// Status of one stream for reports.
#[derive(Debug, Clone)]
pub struct StageInfo {
    /// Stream name.
    pub name: String,
    /// Stage kind (`source` for `raw`).
    pub kind: String,
    /// Input stream (empty for `raw`).
    pub input: String,
    /// Queue capacity and policy (the ring's for `raw`).
    pub queue_capacity: u64,
    /// Queue policy name.
    pub queue_policy: String,
    /// Counters.
    pub stats: Arc<StageStats>,
    /// The model of a learned stage (which one, on which provider; replaceable).
    pub model: Option<Arc<ModelSlot>>,
}

/// A running pipeline.
pub struct Pipeline {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    infos: Vec<StageInfo>,
}

impl Pipeline {
    /// Start the ingest thread and one thread per stage.
    pub fn start(
        ring: IngestConsumer,
        ring_policy: &str,
        ring_capacity: usize,
        stages: &[StageConfig],
        ctx: &StageContext,
        taps: &Taps,
    ) -> Result<Self, PipelineError> {
        let stage_error = |(index, error)| PipelineError::Stage { index, error };
        let inputs = resolve_inputs(stages).map_err(stage_error)?;
        let mut built = Vec::new();
        for (i, (s, (_, input))) in stages.iter().zip(&inputs).enumerate() {
            let resolved = StageConfig {
                input: Some(input.clone()),
                ..s.clone()
            };
            built.push(resolved.build(ctx).map_err(|e| stage_error((i, e)))?);
        }
        let raw_stats = Arc::new(StageStats::default());
        let mut infos = vec![StageInfo {
            name: RAW.into(),
            kind: "source".into(),
            input: String::new(),
            queue_capacity: ring_capacity as u64,
            queue_policy: ring_policy.into(),
            stats: raw_stats.clone(),
            model: None,
        }];
        // Queues first, so that every stream knows its downstream senders.
        let mut senders: HashMap<String, Vec<QueueSender>> = HashMap::new();
        let mut receivers: Vec<Receiver<Frame>> = Vec::new();
        for ((s, (name, input)), stage) in stages.iter().zip(&inputs).zip(&built) {
            let stats = Arc::new(StageStats::default());
            let (tx, rx) = stage_queue(s.queue, stats.clone());
            senders.entry(input.clone()).or_default().push(tx);
            receivers.push(rx);
            infos.push(StageInfo {
                name: name.clone(),
                kind: s.kind.name().into(),
                input: input.clone(),
                queue_capacity: s.queue.effective_capacity() as u64,
                queue_policy: s.queue.policy.name().into(),
                stats,
                model: stage.model_slot(),
            });
        }
        let mut outputs = Vec::new();
        for info in &infos {
            let hub = taps
                .get(&info.name)
                .ok_or_else(|| PipelineError::MissingTap(info.name.clone()))?;
            outputs.push(Output::new(
                senders.remove(&info.name).unwrap_or_default(),
                hub.clone(),
            ));
        }
        // From here on, dropping `pipeline` (on error) tells the started threads to stop.
        let mut pipeline = Self {
            threads: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            infos,
        };
        let mut outputs = outputs.into_iter();
        let raw_output = outputs.next().expect("raw is always first");
        let stop = pipeline.stop.clone();
        pipeline.spawn("ingest".into(), move || {
            crate::thread_nice::raise_current_thread(
                "ingest",
                crate::thread_nice::CAMERA_PATH_NICE,
            );
            ingest_loop(ring, raw_output, &raw_stats, &stop)
        })?;
        let stage_infos = pipeline.infos[1..].to_vec();
        for ((((stage, rx), info), output), config) in built
            .into_iter()
            .zip(receivers)
            .zip(stage_infos)
            .zip(outputs)
            .zip(stages)
        {
            let name = info.name.clone();
            let nice = config.nice.unwrap_or(if stage.model_slot().is_some() {
                LEARNED_STAGE_NICE
            } else {
                0
            });
            pipeline.spawn(format!("stage-{name}"), move || {
                crate::thread_nice::lower_current_thread(&name, nice);
                stage_loop(&name, stage, rx, output, &info.stats)
            })?;
        }
        Ok(pipeline)
    }

    fn spawn(
        &mut self,
        name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), PipelineError> {
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(f)
            .map_err(|source| PipelineError::Spawn { name, source })?;
        self.threads.push(handle);
        Ok(())
    }

    /// Status of every stream, `raw` first.
    pub fn infos(&self) -> &[StageInfo] {
        &self.infos
    }

    /// Drain what is queued, stop every thread and wait for them. Call after the source has
    /// stopped, so that no frame in flight is lost.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a pipeline thread panicked");
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Ingest thread: moves frames from the ring to the `raw` stream until stopped and drained.
fn ingest_loop(ring: IngestConsumer, output: Output, stats: &StageStats, stop: &AtomicBool) {
    loop {
        match ring.pop_timeout(Duration::from_millis(20)) {
            Some(frame) => {
                stats.enqueued.fetch_add(1, Ordering::Relaxed);
                stats.frames_in.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                Emitter::new(&output, stats).emit(frame);
                stats.process_time.record(started.elapsed());
            }
            None if stop.load(Ordering::Relaxed) => break,
            None => {}
        }
    }
}

/// Stage thread: processes its queue until every upstream sender is gone.
fn stage_loop(
    name: &str,
    mut stage: Box<dyn Stage>,
    rx: Receiver<Frame>,
    output: Output,
    stats: &StageStats,
) {
    let mut last_error_log: Option<Instant> = None;
    for frame in rx.iter() {
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = stage.process(&frame, &mut Emitter::new(&output, stats));
        stats.process_time.record(started.elapsed());
        if let Err(e) = result {
            let errors = stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
            // Log the first error and then at most one a second, with the running count.
            if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(stage = name, kind = stage.kind(), errors, error = %e, "frame skipped");
                last_error_log = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, input: Option<&str>) -> StageConfig {
        StageConfig {
            name: name.into(),
            kind: StageKind::Passthrough,
            input: input.map(Into::into),
            queue: QueueConfig::default(),
            params: toml::Table::new(),
            nice: None,
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_stage_thread_runs_at_its_configured_niceness_and_bad_values_are_refused() {
        let mut niced = stage("niced", Some("raw"));
        niced.nice = Some(7);
        let plain = stage("plain", Some("raw"));
        let (_producer, consumer) =
            crate::ring::ingest_ring(4, crate::ring::OverflowPolicy::DropOldest);
        let stages = [niced.clone(), plain];
        let taps = Taps::new(&stages);
        let pipeline = Pipeline::start(
            consumer,
            "drop_oldest",
            4,
            &stages,
            &StageContext::default(),
            &taps,
        )
        .unwrap();
        // The threads set their priority (and their name) as they start.
        let deadline = Instant::now() + Duration::from_secs(10);
        let nice = crate::thread_nice::of_threads_named;
        while (nice("stage-niced") != [7] || nice("stage-plain") != [0])
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(nice("stage-niced"), [7]);
        assert_eq!(nice("stage-plain"), [0]);
        // The ingest thread is on the camera path: raised when the process may raise it.
        let camera_path = crate::thread_nice::CAMERA_PATH_NICE;
        let ingest = if crate::thread_nice::may_raise_to(camera_path) {
            camera_path
        } else {
            0
        };
        while !nice("ingest").contains(&ingest) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(nice("ingest").contains(&ingest), "{:?}", nice("ingest"));
        drop(pipeline);

        niced.nice = Some(20);
        let e = niced.check().unwrap_err();
        assert_eq!(e.key, "nice");
        assert!(e.problem.contains("got 20"), "{e}");
    }

    #[test]
    fn inputs_default_to_the_previous_stage_and_must_exist_earlier() {
        let ok =
            resolve_inputs(&[stage("a", None), stage("b", None), stage("c", Some("raw"))]).unwrap();
        assert_eq!(ok[1], ("b".into(), "a".into()));
        assert_eq!(ok[2], ("c".into(), "raw".into()));
        let (i, e) = resolve_inputs(&[stage("a", Some("b")), stage("b", None)]).unwrap_err();
        assert_eq!((i, e.key.as_str()), (0, "input"));
        let (i, e) = resolve_inputs(&[stage("a", None), stage("a", None)]).unwrap_err();
        assert_eq!((i, e.key.as_str()), (1, "name"));
        assert!(resolve_inputs(&[stage("raw", None)]).is_err());
    }

    #[test]
    fn bad_stage_parameters_name_the_key() {
        let mut s = stage("g", None);
        s.kind = StageKind::Gaussian;
        s.params.insert("sigma".into(), toml::Value::Float(-1.0));
        assert_eq!(s.check().err().unwrap().key, "params.sigma");
        s.params.clear();
        s.params.insert("sigmaa".into(), toml::Value::Float(1.0));
        let e = s.check().err().unwrap();
        assert!(e.problem.contains("sigmaa"), "{e}");
    }
}
