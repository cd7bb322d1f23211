//! Configuration: one TOML file, parsed strictly (unknown keys are errors) and validated before
//! anything starts. Every error names the key and what is wrong with it.
//!
//! The embedded default (`config/default.toml`) runs the simulated camera through the shipped
//! learned denoiser (and a Gaussian stage beside it) with the API on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pipeline::{StageConfig, resolve_inputs};
use crate::ring::OverflowPolicy;
use crate::source::genicam::GenicamConfig;
use crate::source::push::PushConfig;
use crate::source::replay::ReplayConfig;
use crate::source::simulated::SimulatedConfig;

/// The configuration shipped inside the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys or wrong types (the message names the key).
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("invalid config: {key}: {problem}")]
    Invalid {
        /// Dotted key, e.g. `stages[1].params.sigma`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// `[api]`: the gRPC server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on. Loopback by default; anything else is reachable from the network.
    pub listen: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
        }
    }
}

/// `[http]`: the browser preview page and Prometheus `/metrics`, on their own port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the preview page and `/metrics` at all.
    pub enabled: bool,
    /// Address to listen on. Loopback by default; anything else is reachable from the network.
    pub listen: String,
    /// Longest side, in pixels, of a preview image when the page asks for automatic
    /// downsampling.
    pub preview_max_side: u32,
    /// Most frames per second sent to one preview panel (eyes need no more; every frame
    /// rendered costs CPU the pipeline could use).
    pub preview_max_fps: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:50052".into(),
            preview_max_side: 1024,
            preview_max_fps: 30.0,
        }
    }
}

/// `[acquisition]`: ingest and start-up behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcquisitionConfig {
    /// Start acquiring as soon as the daemon is up.
    pub autostart: bool,
    /// Frames the ingest ring holds.
    pub ring_capacity: usize,
    /// What the camera thread does when the ring is full.
    pub ring_policy: OverflowPolicy,
    /// Camera frame buffers (0 = ring capacity + 16).
    pub source_pool_frames: usize,
}

impl Default for AcquisitionConfig {
    fn default() -> Self {
        Self {
            autostart: false,
            ring_capacity: 64,
            ring_policy: OverflowPolicy::DropOldest,
            source_pool_frames: 0,
        }
    }
}

impl AcquisitionConfig {
    /// Camera frame buffers actually used.
    pub fn pool_frames(&self) -> usize {
        if self.source_pool_frames == 0 {
            self.ring_capacity + 16
        } else {
            self.source_pool_frames
        }
    }
}

/// Which source an acquisition uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The built-in microscope simulator.
    #[default]
    Simulated,
    /// A TIFF stack played back.
    Replay,
    /// Frames pushed over gRPC.
    Push,
    /// A GigE Vision / USB3 Vision camera through Aravis (cargo feature `genicam`).
    Genicam,
}

impl SourceKind {
    /// Name used in config and the API.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Simulated => "simulated",
            SourceKind::Replay => "replay",
            SourceKind::Push => "push",
            SourceKind::Genicam => "genicam",
        }
    }

    /// Parse a name as used in config and the API.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "simulated" => Some(SourceKind::Simulated),
            "replay" => Some(SourceKind::Replay),
            "push" => Some(SourceKind::Push),
            "genicam" => Some(SourceKind::Genicam),
            _ => None,
        }
    }
}

/// `[source]`: the default source kind and the settings of each kind.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Source used when `Start` does not name one.
    pub kind: SourceKind,
    /// `[source.simulated]`.
    pub simulated: SimulatedConfig,
    /// `[source.replay]` (required when `replay` is used).
    pub replay: Option<ReplayConfig>,
    /// `[source.push]`.
    pub push: PushConfig,
    /// `[source.genicam]` (required when `genicam` is used).
    pub genicam: Option<GenicamConfig>,
}

/// `[subscribers]`: live frame subscriptions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscribersConfig {
    /// Queue size of a subscriber that does not ask for one.
    pub queue_capacity: usize,
    /// Largest queue a subscriber may ask for.
    pub max_queue_capacity: usize,
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4,
            max_queue_capacity: 64,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter (overridden by `RUST_LOG`), e.g. `info` or `scopepilot=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

/// `[models]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folders whose entries are model packages (relative: see [`crate::install::locate`]).
    pub search_paths: Vec<PathBuf>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            search_paths: vec!["models".into()],
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[api]`.
    pub api: ApiConfig,
    /// `[http]`: preview page and metrics.
    pub http: HttpConfig,
    /// `[acquisition]`.
    pub acquisition: AcquisitionConfig,
    /// `[source]`.
    pub source: SourceConfig,
    /// `[[stages]]`, in pipeline order.
    pub stages: Vec<StageConfig>,
    /// `[subscribers]`.
    pub subscribers: SubscribersConfig,
    /// `[inference]`: ONNX Runtime (library, execution provider, threads).
    pub inference: crate::inference::InferenceConfig,
    /// `[models]`: where `ListModels` / `LoadModel` look for model packages.
    pub models: ModelsConfig,
    /// `[recording]`: where and how `StartRecording` writes OME-Zarr.
    pub recording: crate::sink::record::RecordingConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[[rules]]`: event-triggered acquisition rules (editable at run time over gRPC).
    pub rules: Vec<crate::rules::RuleConfig>,
    /// `[security]`: tokens and what may listen beyond loopback.
    pub security: crate::access::SecurityConfig,
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded_default() -> Self {
        Self::from_toml(EMBEDDED_DEFAULT).expect("the embedded default config is valid")
    }

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parse and validate TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse(e.to_string().trim_end().to_string()))?;
        config.resolve_paths();
        config.validate()?;
        Ok(config)
    }

    /// Find relative model paths in the working directory or above the executable (see
    /// [`crate::install::locate`]), so the embedded default works from any directory.
    fn resolve_paths(&mut self) {
        for stage in &mut self.stages {
            if let Some(toml::Value::String(model)) = stage.params.get_mut("model") {
                *model = crate::install::locate(Path::new(model))
                    .to_string_lossy()
                    .into_owned();
            }
        }
        for p in &mut self.models.search_paths {
            *p = crate::install::locate(p);
        }
    }

    /// What rules are checked against: the detect stages with their event kinds, and the
    /// streams.
    pub fn rule_context(&self) -> crate::rules::RuleContext {
        crate::rules::RuleContext {
            detectors: self
                .stages
                .iter()
                .filter_map(|s| s.event_kind().map(|k| (s.name.clone(), k)))
                .collect(),
            streams: std::iter::once(crate::pipeline::RAW.to_string())
                .chain(self.stages.iter().map(|s| s.name.clone()))
                .collect(),
        }
    }

    /// The API listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.api.listen.parse().map_err(|e| {
            invalid(
                "api.listen",
                format!("{:?} is not an IP:port address ({e})", self.api.listen),
            )
        })
    }

    /// The preview page's listen address.
    pub fn http_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse().map_err(|e| {
            invalid(
                "http.listen",
                format!("{:?} is not an IP:port address ({e})", self.http.listen),
            )
        })
    }

    /// Check every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let api = self.listen_addr()?;
        let http = self.http_addr()?;
        let mut remote = Vec::new();
        if !api.ip().is_loopback() {
            remote.push(("api.listen", api.to_string()));
        }
        if self.http.enabled && !http.ip().is_loopback() {
            remote.push(("http.listen", http.to_string()));
        }
        if let Some((key, problem)) = self.security.problems(&remote).into_iter().next() {
            return Err(invalid(format!("security.{key}"), problem));
        }
        if !(64..=8192).contains(&self.http.preview_max_side) {
            return Err(invalid(
                "http.preview_max_side",
                format!("must be 64..=8192, got {}", self.http.preview_max_side),
            ));
        }
        if !(self.http.preview_max_fps > 0.0 && self.http.preview_max_fps <= 1000.0) {
            return Err(invalid(
                "http.preview_max_fps",
                format!("must be in (0, 1000], got {}", self.http.preview_max_fps),
            ));
        }
        let a = &self.acquisition;
        if !(1..=65_536).contains(&a.ring_capacity) {
            return Err(invalid(
                "acquisition.ring_capacity",
                format!("must be 1..=65536, got {}", a.ring_capacity),
            ));
        }
        if a.source_pool_frames != 0 && a.source_pool_frames < 2 {
            return Err(invalid(
                "acquisition.source_pool_frames",
                "must be 0 (automatic) or at least 2",
            ));
        }
        if let Some((key, problem)) = self.source.simulated.problems().into_iter().next() {
            return Err(invalid(format!("source.simulated.{key}"), problem));
        }
        match &self.source.replay {
            Some(r) if !(r.frame_rate_hz > 0.0 && r.frame_rate_hz <= 10_000.0) => {
                return Err(invalid(
                    "source.replay.frame_rate_hz",
                    format!("must be in (0, 10000], got {}", r.frame_rate_hz),
                ));
            }
            None if self.source.kind == SourceKind::Replay => {
                return Err(invalid(
                    "source.replay",
                    "source.kind is \"replay\" but there is no [source.replay] section with a path",
                ));
            }
            _ => {}
        }
        if let Some(g) = &self.source.genicam
            && let Some((key, problem)) = g.problems().into_iter().next()
        {
            return Err(invalid(format!("source.genicam.{key}"), problem));
        }
        if self.source.kind == SourceKind::Genicam {
            if !crate::source::genicam::AVAILABLE {
                return Err(invalid(
                    "source.kind",
                    format!("\"genicam\": {}", crate::source::genicam::NOT_BUILT),
                ));
            }
            if self.source.genicam.is_none() {
                return Err(invalid(
                    "source.genicam",
                    "source.kind is \"genicam\" but there is no [source.genicam] section (address = \"<camera IP>\")",
                ));
            }
        }
        if self.source.push.pool_frames < 2 {
            return Err(invalid("source.push.pool_frames", "must be at least 2"));
        }
        resolve_inputs(&self.stages)
            .map_err(|(i, e)| invalid(format!("stages[{i}].{}", e.key), e.problem))?;
        for (i, s) in self.stages.iter().enumerate() {
            s.check()
                .map_err(|e| invalid(format!("stages[{i}] ({}).{}", s.name, e.key), e.problem))?;
        }
        let rules = self.rule_context();
        for (i, r) in self.rules.iter().enumerate() {
            let at = |key: &str| format!("rules[{i}] ({}).{key}", r.name);
            r.check(&rules)
                .map_err(|e| invalid(at(&e.key), e.problem))?;
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(invalid(at("name"), "is used by an earlier rule"));
            }
        }
        if let Some((key, problem)) = self.recording.problem() {
            return Err(invalid(format!("recording.{key}"), problem));
        }
        let s = &self.subscribers;
        if s.queue_capacity == 0 || s.queue_capacity > s.max_queue_capacity {
            return Err(invalid(
                "subscribers.queue_capacity",
                format!(
                    "must be 1..=max_queue_capacity ({}), got {}",
                    s.max_queue_capacity, s.queue_capacity
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn the_embedded_default_is_valid_and_safe() {
        let c = Config::embedded_default();
        assert!(
            c.listen_addr().unwrap().ip().is_loopback(),
            "listens on loopback by default"
        );
        assert_eq!(c.source.kind, SourceKind::Simulated);
        assert!(
            c.stages
                .iter()
                .any(|s| s.kind == crate::pipeline::StageKind::Denoise)
        );
        assert!(
            c.stages
                .iter()
                .any(|s| s.kind == crate::pipeline::StageKind::Gaussian)
        );
        assert!(c.acquisition.autostart);
    }

    #[test]
    fn genicam_needs_the_feature_and_a_section() {
        let e = err("[source]\nkind = \"genicam\"");
        if crate::source::genicam::AVAILABLE {
            assert!(e.contains("source.genicam"), "{e}");
        } else {
            assert!(
                e.contains("source.kind") && e.contains("--features genicam"),
                "{e}"
            );
        }
        // The section parses on every build, so one file serves both builds.
        let c = Config::from_toml(
            "[source.genicam]\naddress = \"192.168.1.20\"\nroi = [0, 0, 512, 512]",
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn an_empty_file_means_all_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:50051");
        assert!(c.stages.is_empty());
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        let cases = [
            ("[api]\nlisten = \"nowhere\"", "api.listen"),
            ("[http]\nlisten = \"localhost\"", "http.listen"),
            ("[http]\npreview_max_side = 10", "http.preview_max_side"),
            ("[http]\npreview_max_fps = 0", "http.preview_max_fps"),
            ("[api]\nlisen = \"127.0.0.1:1\"", "lisen"),
            (
                "[acquisition]\nring_capacity = 0",
                "acquisition.ring_capacity",
            ),
            ("[acquisition]\nring_policy = \"sometimes\"", "sometimes"),
            ("[source.simulated]\nwidth = 3", "source.simulated.width"),
            (
                "[source.simulated.scene]\nmitosis_duration_s = -1.0",
                "source.simulated.scene.mitosis_duration_s",
            ),
            ("[source]\nkind = \"replay\"", "source.replay"),
            ("[source]\nkind = \"webcam\"", "webcam"),
            (
                "[[stages]]\nname = \"g\"\nkind = \"gaussian\"\nparams = { sigma = 0.0 }",
                "stages[0] (g).params.sigma",
            ),
            ("[[stages]]\nname = \"g\"\nkind = \"blur\"", "blur"),
            (
                "[[stages]]\nname = \"g\"\nkind = \"gaussian\"\ninput = \"denoised\"",
                "stages[0].input",
            ),
            (
                "[subscribers]\nqueue_capacity = 0",
                "subscribers.queue_capacity",
            ),
            ("[acquisition\nautostart = true", "TOML parse error"),
            ("[inference]\nprovider = \"tpu\"", "tpu"),
            (
                "[recording]\nframes_per_chunk = 0",
                "recording.frames_per_chunk",
            ),
            (
                "[recording]\nmemory_budget_mib = 0",
                "recording.memory_budget_mib",
            ),
            ("[recording]\nzstd_level = 40", "recording.zstd_level"),
            (
                "[recording]\npixel_size_um = -1.0",
                "recording.pixel_size_um",
            ),
            ("[recording]\ncompression = \"lz4\"", "lz4"),
            ("[recording]\nbudget = 1", "budget"),
            (
                "[source.genicam]\naddress = \"camera\"",
                "source.genicam.address",
            ),
            (
                "[source.genicam]\naddress = \"10.0.0.2\"\nbuffers = 2",
                "source.genicam.buffers",
            ),
            ("[source.genicam]\nadress = \"10.0.0.2\"", "adress"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(
                e.contains(want),
                "error for {text:?} should mention {want:?}, got: {e}"
            );
        }
    }
}
