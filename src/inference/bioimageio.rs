//! Reading bioimage.io model descriptions (`rdf.yaml` / `bioimageio.yaml`), format 0.5 and 0.4,
//! into a [`ModelPackage`]: ONNX weights, tensor names and axes, pre/postprocessing, halo and
//! size rules, and the test tensors used for the self-test on load.
//!
//! Only what scopepilot can run is accepted: one single-channel 2D input and one output of the
//! same size (axes from batch, channel of size 1, y, x), ONNX weights, per-sample or fixed
//! statistics. Anything else is refused with a message that says what and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::package::{
    Axis, ModelPackage, SizeRule, TestTensors, Tolerance, axes_from_letters, check_axes,
};
use super::processing::Processing;

/// Parse the description at `path` (its folder holds the files it names).
pub fn read(path: &Path) -> Result<ModelPackage, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    parse_description(&text, path.parent().unwrap_or(Path::new(".")))
}

/// Parse description text whose file names are relative to `base`. Opens no file: whether the
/// files it names exist is checked by [`ModelPackage::open`].
pub fn parse_description(text: &str, base: &Path) -> Result<ModelPackage, String> {
    let probe: Probe = parse(text)?;
    if probe.kind.as_deref().is_some_and(|k| k != "model") {
        return Err(format!(
            "type is {:?}; only model descriptions can be loaded",
            probe.kind.unwrap_or_default()
        ));
    }
    let version = probe.format_version;
    match version.split('.').take(2).collect::<Vec<_>>()[..] {
        ["0", "5"] => from_v05(parse(text)?, base, &version),
        ["0", "4"] => from_v04(parse(text)?, base, &version),
        _ => Err(format!(
            "format_version {version:?} is not supported (0.5.x and 0.4.x are)"
        )),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    // YAML 1.2 booleans only: an axis called `y` must stay the string "y". Infinities are
    // legal (0.4 `data_range: [-.inf, .inf]`).
    let options = serde_saphyr::options! {
        strict_booleans: true,
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::PassThrough,
    };
    serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| format!("invalid description: {e}"))
}

#[derive(Deserialize)]
struct Probe {
    format_version: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.

/// A number or a one-element list of numbers (per-channel values of a single channel).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Number {
    One(f64),
    List(Vec<f64>),
}

impl Number {
    fn single(&self, key: &str) -> Result<f64, String> {
        match self {
            Number::One(v) => Ok(*v),
            Number::List(v) if v.len() == 1 => Ok(v[0]),
            Number::List(v) => Err(format!(
                "{key} has {} values; only single-channel models are supported",
                v.len()
            )),
        }
    }
}

/// Axes of a reduction: a list of ids (0.5) or a string of letters (0.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ReduceAxes {
    Ids(Vec<String>),
    Letters(String),
}

impl ReduceAxes {
    fn covers_the_image(&self) -> bool {
        let has = |a: &str| match self {
            ReduceAxes::Ids(ids) => ids.iter().any(|i| i == a),
            ReduceAxes::Letters(s) => s.contains(a),
        };
        has("x") && has("y")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Kwargs {
    axes: Option<ReduceAxes>,
    mode: Option<String>,
    min_percentile: Option<f64>,
    max_percentile: Option<f64>,
    eps: Option<f64>,
    reference_tensor: Option<String>,
    mean: Option<Number>,
    std: Option<Number>,
    gain: Option<Number>,
    offset: Option<Number>,
    min: Option<f64>,
    max: Option<f64>,
    threshold: Option<Number>,
    dtype: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Step {
    /// `id` in 0.5, `name` in 0.4.
    #[serde(alias = "name")]
    id: String,
    #[serde(default)]
    kwargs: Kwargs,
}

/// Convert processing steps; `own` is the tensor the steps belong to, `input` the model input.
fn processing(steps: &[Step], own: &str, input: &str) -> Result<Vec<Processing>, String> {
    steps.iter().map(|s| step(s, own, input)).collect()
}

fn step(s: &Step, own: &str, input: &str) -> Result<Processing, String> {
    let k = &s.kwargs;
    let id = s.id.as_str();
    let need = |v: Option<&Number>, key: &str| -> Result<f64, String> {
        v.ok_or_else(|| format!("{id}: kwargs.{key} is missing"))?
            .single(&format!("{id}: kwargs.{key}"))
    };
    if k.axes.as_ref().is_some_and(|a| !a.covers_the_image()) {
        return Err(format!(
            "{id}: statistics over only some spatial axes are not supported (axes must include y and x)"
        ));
    }
    let mode = k.mode.as_deref().unwrap_or("per_sample");
    if mode == "per_dataset" {
        return Err(format!(
            "{id}: mode per_dataset needs dataset statistics, which a package does not carry; use per_sample or fixed values"
        ));
    }
    // A reference tensor must be this tensor or the model input.
    let from_input = match k.reference_tensor.as_deref() {
        None => false,
        Some(r) if r == own => false,
        Some(r) if r == input => true,
        Some(r) => return Err(format!("{id}: unknown reference_tensor {r:?}")),
    };
    let eps = k.eps.unwrap_or(1e-6);
    let p = match id {
        "ensure_dtype" => Processing::EnsureDtype {
            dtype: k
                .dtype
                .clone()
                .ok_or("ensure_dtype: kwargs.dtype is missing")?,
        },
        "scale_range" => Processing::ScaleRange {
            min_percentile: k.min_percentile.unwrap_or(0.0),
            max_percentile: k.max_percentile.unwrap_or(100.0),
            eps,
            from_input,
        },
        "zero_mean_unit_variance" if mode == "fixed" => Processing::FixedZeroMeanUnitVariance {
            mean: need(k.mean.as_ref(), "mean")?,
            std: need(k.std.as_ref(), "std")?,
            eps,
        },
        "zero_mean_unit_variance" => Processing::ZeroMeanUnitVariance { eps },
        "fixed_zero_mean_unit_variance" => Processing::FixedZeroMeanUnitVariance {
            mean: need(k.mean.as_ref(), "mean")?,
            std: need(k.std.as_ref(), "std")?,
            eps,
        },
        "scale_mean_variance" => {
            if !from_input {
                return Err(format!(
                    "{id}: kwargs.reference_tensor must name the model input {input:?}"
                ));
            }
            Processing::ScaleMeanVariance { eps }
        }
        "scale_linear" => Processing::ScaleLinear {
            gain: k
                .gain
                .as_ref()
                .map_or(Ok(1.0), |g| g.single("scale_linear: kwargs.gain"))?,
            offset: k
                .offset
                .as_ref()
                .map_or(Ok(0.0), |o| o.single("scale_linear: kwargs.offset"))?,
        },
        "clip" => Processing::Clip {
            min: k.min,
            max: k.max,
        },
        "sigmoid" => Processing::Sigmoid,
        "binarize" => Processing::Binarize {
            threshold: need(k.threshold.as_ref(), "threshold")?,
        },
        other => return Err(format!("unknown processing step {other:?}")),
    };
    p.check()?;
    Ok(p)
}

#[derive(Debug, Clone, Deserialize)]
struct WeightsEntry {
    source: String,
    sha256: Option<String>,
}

/// The ONNX entry of `weights`, or a message naming the formats that are there.
fn onnx_weights(
    weights: &BTreeMap<String, Option<WeightsEntry>>,
    base: &Path,
) -> Result<(PathBuf, Option<String>), String> {
    match weights.get("onnx") {
        Some(Some(w)) => Ok((base.join(&w.source), w.sha256.clone())),
        _ => Err(format!(
            "no ONNX weights (this package has: {}); scopepilot runs ONNX only: export the model to ONNX first",
            weights
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Config {
    #[serde(default)]
    bioimageio: Option<BioimageioConfig>,
    #[serde(default)]
    scopepilot: Option<ScopepilotConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct BioimageioConfig {
    #[serde(default)]
    reproducibility_tolerance: Vec<ToleranceEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct ToleranceEntry {
    relative_tolerance: Option<f64>,
    absolute_tolerance: Option<f64>,
    mismatched_elements_per_million: Option<f64>,
    #[serde(default)]
    weights_formats: Vec<String>,
}

/// scopepilot's own keys under `config.scopepilot`.
#[derive(Debug, Clone, Default, Deserialize)]
struct ScopepilotConfig {
    preferred_tile: Option<usize>,
    detector: Option<super::package::DetectorDefaults>,
}

impl Config {
    fn tolerance(&self) -> Tolerance {
        let mut t = Tolerance::default();
        let entries = self
            .bioimageio
            .as_ref()
            .map(|b| b.reproducibility_tolerance.as_slice())
            .unwrap_or_default();
        if let Some(e) = entries
            .iter()
            .find(|e| e.weights_formats.is_empty() || e.weights_formats.iter().any(|f| f == "onnx"))
        {
            t.relative = e.relative_tolerance.unwrap_or(t.relative);
            t.absolute = e.absolute_tolerance.unwrap_or(t.absolute);
            t.mismatched_per_million = e
                .mismatched_elements_per_million
                .unwrap_or(t.mismatched_per_million);
        }
        t
    }

    fn preferred_tile(&self) -> Option<usize> {
        self.scopepilot.as_ref().and_then(|s| s.preferred_tile)
    }
}

fn one_each<'a, T>(list: &'a [T], what: &str) -> Result<&'a T, String> {
    match list {
        [one] => Ok(one),
        _ => Err(format!(
            "{} {what} tensors; an image-to-image model has exactly one",
            list.len()
        )),
    }
}

/// What both formats describe the same way.
#[derive(Debug, Deserialize)]
struct Common {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    config: Config,
}

/// The input and output: name, axes, processing steps.
struct Tensors<'a> {
    input: (&'a str, Vec<Axis>, &'a [Step]),
    /// Channel names of the input (one entry for a single channel).
    input_channels: Vec<String>,
    output: (&'a str, Vec<Axis>, &'a [Step]),
}

/// Weights and the size rules read from the tensors.
struct Layout {
    onnx: PathBuf,
    sha256: Option<String>,
    size: SizeRule,
    halo: usize,
}

/// The package, from the parts either format yields.
fn assemble(
    common: Common,
    tensors: Tensors<'_>,
    layout: Layout,
    test: Option<(&str, &str)>,
    base: &Path,
    version: &str,
) -> Result<ModelPackage, String> {
    let (in_name, input_axes, pre) = tensors.input;
    let (out_name, output_axes, post) = tensors.output;
    Ok(ModelPackage {
        name: common.name,
        description: common.description,
        format: format!("bioimage.io {version}"),
        onnx: layout.onnx,
        sha256: layout.sha256,
        input_name: in_name.to_string(),
        output_name: out_name.to_string(),
        input_axes,
        output_axes,
        preprocessing: processing(pre, in_name, in_name)?,
        input_channels: tensors.input_channels,
        postprocessing: processing(post, out_name, in_name)?,
        size: layout.size,
        halo: layout.halo,
        preferred_tile: common.config.preferred_tile(),
        test: test.map(|(i, o)| TestTensors {
            input: base.join(i),
            output: base.join(o),
            tolerance: common.config.tolerance(),
        }),
        license: common.license.unwrap_or_default(),
        detector: common.config.scopepilot.and_then(|s| s.detector),
    })
}

// ---------------------------------------------------------------------------------------------
// Format 0.5.

#[derive(Debug, Deserialize)]
struct Rdf05 {
    #[serde(flatten)]
    common: Common,
    inputs: Vec<Tensor05>,
    outputs: Vec<Tensor05>,
    weights: BTreeMap<String, Option<WeightsEntry>>,
}

#[derive(Debug, Deserialize)]
struct Tensor05 {
    id: String,
    axes: Vec<Axis05>,
    #[serde(default)]
    preprocessing: Vec<Step>,
    #[serde(default)]
    postprocessing: Vec<Step>,
    test_tensor: Option<FileRef>,
}

#[derive(Debug, Deserialize)]
struct FileRef {
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Axis05 {
    Batch {},
    Channel {
        #[serde(default)]
        channel_names: Vec<String>,
        #[serde(default)]
        size: Option<Size05>,
    },
    Space {
        #[serde(default = "default_axis_id")]
        id: String,
        size: Size05,
        #[serde(default)]
        halo: usize,
    },
    #[serde(other)]
    Other,
}

fn default_axis_id() -> String {
    "x".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size05 {
    Fixed(usize),
    Parameterized {
        min: usize,
        step: usize,
    },
    Reference {
        tensor_id: String,
        axis_id: String,
        #[serde(default)]
        offset: i64,
    },
}

struct Axes05 {
    axes: Vec<Axis>,
    /// Channel names (one, possibly empty, for a single channel).
    channels: Vec<String>,
    sizes: Vec<(String, Size05)>,
    halo: usize,
}

fn axes_v05(tensor: &Tensor05) -> Result<Axes05, String> {
    let t = &tensor.id;
    let mut out = Axes05 {
        axes: Vec::new(),
        channels: vec![String::new()],
        sizes: Vec::new(),
        halo: 0,
    };
    for a in &tensor.axes {
        match a {
            Axis05::Batch {} => out.axes.push(Axis::Batch),
            Axis05::Channel {
                channel_names,
                size,
            } => {
                let n = match size {
                    Some(Size05::Fixed(n)) => *n,
                    _ => channel_names.len().max(1),
                };
                if n == 0 || (n > 1 && channel_names.len() != n) {
                    return Err(format!(
                        "tensor {t:?} has {n} channels: a multi-channel tensor must name each channel (channel_names)"
                    ));
                }
                if n > 1 {
                    out.channels = channel_names.clone();
                }
                out.axes.push(Axis::Channel);
            }
            Axis05::Space { id, size, halo } => {
                out.axes.push(match id.as_str() {
                    "y" => Axis::Y,
                    "x" => Axis::X,
                    other => {
                        return Err(format!(
                            "tensor {t:?}: space axis {other:?} is not supported (2D y, x only)"
                        ));
                    }
                });
                out.sizes.push((id.clone(), size.clone()));
                out.halo = out.halo.max(*halo);
            }
            Axis05::Other => {
                return Err(format!(
                    "tensor {t:?}: only batch, channel and space axes are supported"
                ));
            }
        }
    }
    check_axes(&out.axes, t)?;
    Ok(out)
}

fn from_v05(rdf: Rdf05, base: &Path, version: &str) -> Result<ModelPackage, String> {
    let input = one_each(&rdf.inputs, "input")?;
    let output = one_each(&rdf.outputs, "output")?;
    let (onnx, sha256) = onnx_weights(&rdf.weights, base)?;
    let in_axes = axes_v05(input)?;
    let out_axes = axes_v05(output)?;
    if out_axes.channels.len() != 1 {
        return Err(format!(
            "output {:?} has {} channels; only single-channel outputs are supported",
            output.id,
            out_axes.channels.len()
        ));
    }
    if in_axes.channels.len() > 1
        && let Some(step) = input.preprocessing.iter().find(|s| s.id != "ensure_dtype")
    {
        return Err(format!(
            "input {:?} has {} channels: preprocessing {:?} is not supported on a multi-channel input (normalise inside the model)",
            input.id,
            in_axes.channels.len(),
            step.id
        ));
    }
    let mut size = SizeRule::any();
    for (id, s) in &in_axes.sizes {
        size = size.and(match s {
            Size05::Fixed(n) => {
                return Err(format!(
                    "input {:?} axis {id} has the fixed size {n}; only models with parameterised sizes (min, step) are supported",
                    input.id
                ));
            }
            Size05::Parameterized { min, step } => SizeRule::new(*min, *step)?,
            Size05::Reference { .. } => SizeRule::any(),
        });
    }
    for (id, s) in &out_axes.sizes {
        let same = matches!(s, Size05::Reference { tensor_id, axis_id, offset: 0 }
            if *tensor_id == input.id && axis_id == id);
        if !same {
            return Err(format!(
                "output {:?} axis {id} must have the size of input {:?} axis {id} (image-to-image, same size)",
                output.id, input.id
            ));
        }
    }
    let test = match (&input.test_tensor, &output.test_tensor) {
        (Some(i), Some(o)) => Some((i.source.as_str(), o.source.as_str())),
        _ => None,
    };
    assemble(
        rdf.common,
        Tensors {
            input: (&input.id, in_axes.axes, &input.preprocessing),
            input_channels: in_axes.channels,
            output: (&output.id, out_axes.axes, &output.postprocessing),
        },
        Layout {
            onnx,
            sha256,
            size,
            halo: out_axes.halo,
        },
        test,
        base,
        version,
    )
}

// ---------------------------------------------------------------------------------------------
// Format 0.4.

#[derive(Debug, Deserialize)]
struct Rdf04 {
    #[serde(flatten)]
    common: Common,
    inputs: Vec<Input04>,
    outputs: Vec<Output04>,
    #[serde(default)]
    test_inputs: Vec<String>,
    #[serde(default)]
    test_outputs: Vec<String>,
    weights: BTreeMap<String, Option<WeightsEntry>>,
}

#[derive(Debug, Deserialize)]
struct Input04 {
    name: String,
    axes: String,
    shape: Shape04,
    #[serde(default)]
    preprocessing: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Output04 {
    name: String,
    axes: String,
    shape: Shape04,
    #[serde(default)]
    halo: Vec<usize>,
    #[serde(default)]
    postprocessing: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Shape04 {
    Fixed(Vec<usize>),
    Parameterized {
        min: Vec<usize>,
        step: Vec<usize>,
    },
    Implicit {
        reference_tensor: String,
        scale: Vec<f64>,
        offset: Vec<f64>,
    },
}

fn from_v04(rdf: Rdf04, base: &Path, version: &str) -> Result<ModelPackage, String> {
    let input = one_each(&rdf.inputs, "input")?;
    let output = one_each(&rdf.outputs, "output")?;
    let (onnx, sha256) = onnx_weights(&rdf.weights, base)?;
    let in_axes = axes_from_letters(&input.axes, &input.name)?;
    let out_axes = axes_from_letters(&output.axes, &output.name)?;
    let at = |axes: &[Axis], a: Axis| axes.iter().position(|&b| b == a);
    let mut size = SizeRule::any();
    match &input.shape {
        Shape04::Parameterized { min, step }
            if min.len() == in_axes.len() && step.len() == in_axes.len() =>
        {
            for (i, a) in in_axes.iter().enumerate() {
                match a {
                    Axis::Y | Axis::X => size = size.and(SizeRule::new(min[i], step[i])?),
                    Axis::Channel if min[i] != 1 || step.get(i) != Some(&0) => {
                        return Err(format!(
                            "input {:?} has {} channels; only single-channel models are supported",
                            input.name, min[i]
                        ));
                    }
                    _ => {}
                }
            }
        }
        Shape04::Fixed(shape) => {
            return Err(format!(
                "input {:?} has the fixed shape {shape:?}; only models with parameterised sizes (min, step) are supported",
                input.name
            ));
        }
        _ => {
            return Err(format!(
                "input {:?}: shape must be {{min, step}} with one entry per axis",
                input.name
            ));
        }
    }
    match &output.shape {
        Shape04::Implicit {
            reference_tensor,
            scale,
            offset,
        } if *reference_tensor == input.name
            && [Axis::Y, Axis::X].iter().all(|&a| {
                at(&out_axes, a).is_some_and(|i| {
                    scale.get(i) == Some(&1.0) && offset.get(i).is_some_and(|o| *o == 0.0)
                })
            }) => {}
        _ => {
            return Err(format!(
                "output {:?} must have the size of input {:?} (reference_tensor with scale 1 and offset 0 on y and x)",
                output.name, input.name
            ));
        }
    }
    let halo = [Axis::Y, Axis::X]
        .iter()
        .filter_map(|&a| at(&out_axes, a).and_then(|i| output.halo.get(i)))
        .copied()
        .max()
        .unwrap_or(0);
    let test = match (rdf.test_inputs.as_slice(), rdf.test_outputs.as_slice()) {
        ([i], [o]) => Some((i.as_str(), o.as_str())),
        _ => None,
    };
    assemble(
        rdf.common,
        Tensors {
            input: (&input.name, in_axes, &input.preprocessing),
            input_channels: vec![String::new()],
            output: (&output.name, out_axes, &output.postprocessing),
        },
        Layout {
            onnx,
            sha256,
            size,
            halo,
        },
        test,
        base,
        version,
    )
}
