//! Entry points for hostile-input testing: each function feeds arbitrary bytes to one of the
//! daemon's parsers exactly as the daemon would, and returns. An `Err` is the expected answer
//! to garbage; a panic, a hang or an unbounded allocation is a bug.
//!
//! The fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer) are one-line calls of these functions,
//! and `tests/hostile_input.rs` replays the fuzz corpora and every input a fuzzer ever crashed
//! on through the same functions, so a fixed crash stays fixed in the ordinary `cargo test`.
//! `scripts/fuzz.sh` runs the targets for a bounded time.
//!
//! Nothing here needs ONNX Runtime or a network; [`config`] and [`model_package`] may look
//! at (never write) files that the text names, as the daemon does.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::config::Config;
use crate::inference::bioimageio;
use crate::inference::npy::NpyArray;
use crate::inference::package::{ModelPackage, ModelSidecar};
use crate::proto::PushFramesRequest;
use crate::ring::{OverflowPolicy, ingest_ring};
use crate::rules::{RuleConfig, RuleContext};
use crate::source::push::{PushConfig, PushInput};
use crate::source::replay::TiffStack;

/// Decoded-size limit of [`tiff`]: the replay source's `max_mib`, lowered from its 4 GiB
/// default so that a fuzzer's 2 GiB memory limit only trips on a real bug.
pub const TIFF_MAX_BYTES: u64 = 64 << 20;

/// Most messages [`push_frame`] reads from one input.
pub const MAX_PUSHED_MESSAGES: usize = 64;

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

/// A whole configuration file: [`Config::from_toml`] (parse, resolve paths, validate), then
/// what the daemon derives from a valid one (listen addresses, rule context).
pub fn config(bytes: &[u8]) -> Result<(), String> {
    let config = Config::from_toml(text(bytes)?).map_err(|e| e.to_string())?;
    config.listen_addr().map_err(|e| e.to_string())?;
    config.http_addr().map_err(|e| e.to_string())?;
    let _ = config.rule_context();
    Ok(())
}

/// The context [`rules`] checks against: a detector of divisions and one of activity, and
/// the streams of a typical pipeline.
pub fn rule_context() -> RuleContext {
    RuleContext {
        detectors: vec![
            ("divisions".into(), "division".into()),
            ("activity".into(), "activity".into()),
        ],
        streams: ["raw", "denoised", "divisions", "activity"]
            .map(String::from)
            .to_vec(),
    }
}

/// One rule as `PutRule` receives it: [`RuleConfig::from_toml`], then every check against
/// [`rule_context`]. A rule that passes must survive `ListRules`: its TOML form
/// ([`RuleConfig::to_toml`]) parses back to the same TOML (else this panics: a bug).
pub fn rules(bytes: &[u8]) -> Result<(), String> {
    let rule = RuleConfig::from_toml(text(bytes)?).map_err(|e| e.to_string())?;
    let ctx = rule_context();
    let problems = rule.problems(&ctx);
    if let Some(first) = problems.first() {
        return Err(first.to_string());
    }
    let shown = rule.to_toml();
    let again = RuleConfig::from_toml(&shown)
        .unwrap_or_else(|e| panic!("a valid rule's TOML does not parse back: {e}\n{shown}"));
    assert_eq!(
        again.to_toml(),
        shown,
        "a valid rule changes through its TOML form"
    );
    Ok(())
}

/// A TIFF stack as the replay source reads it ([`TiffStack::decode`]), with a decoded-size
/// limit of [`TIFF_MAX_BYTES`].
pub fn tiff(bytes: &[u8]) -> Result<(), String> {
    let stack = TiffStack::decode(Cursor::new(bytes), TIFF_MAX_BYTES)?;
    let spec = stack.spec();
    for i in 0..stack.len() {
        if stack.page(i).len() != spec.pixel_count() {
            return Err(format!("page {i} has the wrong number of pixels"));
        }
    }
    Ok(())
}

/// A package description, read the three ways a model package carries text or data: a
/// bioimage.io `rdf.yaml` ([`bioimageio::parse_description`]), a TOML sidecar
/// ([`ModelSidecar`]) and a `.npy` test tensor ([`NpyArray::parse`]). Each description that
/// parses is checked as [`ModelPackage::open`] checks it before looking for files
/// ([`ModelPackage::check_layout`]) and its tiling is derived. `Ok` when any reading
/// succeeds; otherwise the errors of all three.
pub fn model_package(bytes: &[u8]) -> Result<(), String> {
    let base = Path::new("package");
    let layout = |p: ModelPackage| -> Result<(), String> {
        p.check_layout()?;
        let tiling = p.tiling(0);
        let _ = tiling.is_direct(512, 512);
        Ok(())
    };
    let npy = NpyArray::parse(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let (rdf, sidecar) = match text(bytes) {
        Ok(t) => (
            bioimageio::parse_description(t, base).and_then(layout),
            ModelSidecar::from_toml(t)
                .and_then(|s| s.into_package(PathBuf::from("package/model.onnx"), "toml sidecar"))
                .and_then(layout),
        ),
        Err(e) => (Err(e.clone()), Err(e)),
    };
    match (rdf, sidecar, npy) {
        (Ok(()), _, _) | (_, Ok(()), _) | (_, _, Ok(())) => Ok(()),
        (Err(a), Err(b), Err(c)) => Err(format!("rdf: {a}; sidecar: {b}; npy: {c}")),
    }
}

/// A `PushFrames` client stream: up to [`MAX_PUSHED_MESSAGES`] length-delimited
/// `PushFramesRequest` messages, each decoded (prost), converted
/// (`pushed_frame` of the Frames service) and pushed ([`PushInput::push`]: validation, copy
/// into a pooled buffer, ingest ring) exactly as the server does. Like the server, the first
/// bad frame ends the stream with its error; `Ok` counts the frames accepted.
pub fn push_frame(bytes: &[u8]) -> Result<usize, String> {
    let (producer, consumer) = ingest_ring(4, OverflowPolicy::DropOldest);
    let config = PushConfig {
        pool_frames: 2, // the default preallocates 16 buffers per frame format
        ..PushConfig::default()
    };
    let mut input = PushInput::new(config, producer);
    let mut buf = bytes;
    let mut accepted = 0;
    for _ in 0..MAX_PUSHED_MESSAGES {
        if buf.is_empty() {
            break;
        }
        let msg = PushFramesRequest::decode_length_delimited(&mut buf)
            .map_err(|e| format!("not a PushFramesRequest: {e}"))?;
        let frame = crate::api::pushed_frame(&msg).inspect_err(|_| input.count_rejected())?;
        input.push(&frame)?;
        accepted += 1;
        let _ = consumer.try_pop(); // the pipeline takes frames out
    }
    Ok(accepted)
}
