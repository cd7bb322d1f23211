//! Model packages: what scopepilot needs to run an image-to-image model, read from
//!
//! - a bioimage.io description (`rdf.yaml`, `bioimageio.yaml` or `*.bioimageio.yaml`, format
//!   0.5 or 0.4, see [`super::bioimageio`]) with ONNX weights, processing and test tensors;
//! - a small TOML sidecar (`model.toml`, or `<stem>.toml` next to an `.onnx`);
//! - a bare `.onnx` file (then: whole frames, no halo, no processing).
//!
//! `ModelPackage::open` accepts any of these files or a folder holding one, checks what can be
//! checked without ONNX Runtime (files present, SHA-256 of the weights, shapes and axes), and
//! says exactly what is wrong otherwise.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::InferenceError;
use super::processing::Processing;
use super::tiling::Tiling;

/// Names of bioimage.io description files looked for in a package folder, in order.
const RDF_NAMES: [&str; 2] = ["rdf.yaml", "bioimageio.yaml"];

/// An axis of a model tensor (others are refused when the package is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Batch (always 1 here).
    Batch,
    /// Channel (one for images; an input may have several, see `input_channels`).
    Channel,
    /// Image rows.
    Y,
    /// Image columns.
    X,
}

/// Parse axis letters such as `bcyx` (0.4 descriptions and sidecars).
pub(crate) fn axes_from_letters(letters: &str, tensor: &str) -> Result<Vec<Axis>, String> {
    let axes = letters
        .chars()
        .map(|c| match c {
            'b' => Ok(Axis::Batch),
            'c' => Ok(Axis::Channel),
            'y' => Ok(Axis::Y),
            'x' => Ok(Axis::X),
            other => Err(format!(
                "tensor {tensor:?}: axis {other:?} is not supported (axes from b, c, y, x)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_axes(&axes, tensor)?;
    Ok(axes)
}

/// Axes of an image-to-image model: y before x, each axis at most once.
pub(crate) fn check_axes(axes: &[Axis], tensor: &str) -> Result<(), String> {
    let pos = |a: Axis| axes.iter().position(|&b| b == a);
    match (pos(Axis::Y), pos(Axis::X)) {
        (Some(y), Some(x)) if y < x => {}
        (Some(_), Some(_)) => {
            return Err(format!(
                "tensor {tensor:?}: x before y is not supported (row-major images are)"
            ));
        }
        _ => return Err(format!("tensor {tensor:?}: needs a y and an x axis")),
    }
    let twice = [Axis::Batch, Axis::Channel, Axis::Y, Axis::X]
        .iter()
        .any(|&a| axes.iter().filter(|&&b| b == a).count() > 1);
    if twice {
        return Err(format!("tensor {tensor:?}: an axis appears twice"));
    }
    Ok(())
}

/// Largest halo, tile side, size minimum or size step a package may describe, in pixels: far
/// beyond any frame (16384 pixels a side at most), small enough that tiling arithmetic cannot
/// overflow.
pub const MAX_LAYOUT_PX: usize = 1 << 16;

/// Which spatial sizes a model accepts: `min + k * step` (k >= 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRule {
    /// Smallest side.
    pub min: usize,
    /// Increment (1 = any size from `min`).
    pub step: usize,
}

impl SizeRule {
    /// Any size.
    pub fn any() -> Self {
        Self { min: 1, step: 1 }
    }

    /// Sizes `min + k * step`; a zero step (one fixed size) is refused, and so are a `min` or
    /// `step` beyond [`MAX_LAYOUT_PX`].
    pub fn new(min: usize, step: usize) -> Result<Self, String> {
        if step == 0 {
            return Err(format!(
                "a fixed spatial size ({min}) is not supported; only parameterised sizes (min, step) are"
            ));
        }
        if min > MAX_LAYOUT_PX || step > MAX_LAYOUT_PX {
            return Err(format!(
                "size min {min}, step {step}: at most {MAX_LAYOUT_PX} pixels are supported"
            ));
        }
        Ok(Self {
            min: min.max(1),
            step,
        })
    }

    /// A rule both `self` and `other` accept (for y and x sharing one tiler).
    pub fn and(self, other: Self) -> Self {
        let gcd = |mut a: usize, mut b: usize| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        // Saturating: rules from `new` are small, so this cannot overflow for them.
        Self {
            min: self.min.max(other.min),
            step: (self.step / gcd(self.step, other.step)).saturating_mul(other.step),
        }
    }
}

/// Tolerance of the self-test (bioimage.io `reproducibility_tolerance`; its defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub relative: f64,
    /// Absolute tolerance.
    pub absolute: f64,
    /// Elements allowed outside the tolerance, per million.
    pub mismatched_per_million: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            relative: 1e-3,
            absolute: 1e-4,
            mismatched_per_million: 100.0,
        }
    }
}

/// Test tensors shipped with a package: the self-test runs `input` and expects `output`.
#[derive(Debug, Clone, PartialEq)]
pub struct TestTensors {
    /// `.npy` input.
    pub input: PathBuf,
    /// `.npy` expected output.
    pub output: PathBuf,
    /// How close the output must be.
    pub tolerance: Tolerance,
}

/// A model on disk, checked but not loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPackage {
    /// Short name shown in status and logs.
    pub name: String,
    /// What the model does.
    pub description: String,
    /// Where the description came from: `bioimage.io 0.5.4`, `toml sidecar` or `onnx`.
    pub format: String,
    /// The ONNX file.
    pub onnx: PathBuf,
    /// Expected SHA-256 of the ONNX file, if the package gives one.
    pub sha256: Option<String>,
    /// Input tensor name in the ONNX graph (empty = the graph's only input).
    pub input_name: String,
    /// Output tensor name in the ONNX graph (empty = the graph's only output).
    pub output_name: String,
    /// Axes of the input tensor.
    pub input_axes: Vec<Axis>,
    /// Names of the input's channels: one for an image model; several for models that take
    /// more than one image plane (e.g. `frame0`, `frame1`, `tau` for frame interpolation).
    /// The output always has one channel.
    pub input_channels: Vec<String>,
    /// Axes of the output tensor.
    pub output_axes: Vec<Axis>,
    /// Applied to each whole frame before the model.
    pub preprocessing: Vec<Processing>,
    /// Applied to each whole output frame after the model.
    pub postprocessing: Vec<Processing>,
    /// Spatial sizes the model accepts.
    pub size: SizeRule,
    /// Context pixels per side needed for seamless tiles.
    pub halo: usize,
    /// Preferred output tile side (None = automatic).
    pub preferred_tile: Option<usize>,
    /// Test tensors for the self-test on load.
    pub test: Option<TestTensors>,
    /// License of the weights.
    pub license: String,
    /// How to turn a detector model's score map into events, as calibrated by its authors.
    pub detector: Option<DetectorDefaults>,
}

/// A detection model's own settings (`config.scopepilot.detector` of a bioimage.io package):
/// the defaults of a `detect` stage that runs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DetectorDefaults {
    /// Kind of the events it finds (e.g. `division`).
    pub event_kind: String,
    /// Score-map peaks at or above this become events.
    pub threshold: f32,
    /// Two events of one frame are at least this far apart, pixels.
    pub min_distance_px: f32,
}

/// The sidecar (`model.toml`) for a bare ONNX file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSidecar {
    /// Short name shown in status and logs.
    pub name: String,
    /// What the model does.
    #[serde(default)]
    pub description: String,
    /// ONNX file, relative to the sidecar.
    #[serde(default = "default_weights")]
    pub weights: PathBuf,
    /// License of the weights.
    #[serde(default)]
    pub license: String,
    /// Weights format (only `onnx`).
    #[serde(default)]
    pub format: Option<String>,
    /// ONNX opset, for information.
    #[serde(default)]
    pub opset: Option<u32>,
    /// The input tensor.
    #[serde(default)]
    pub input: TensorSpec,
    /// The output tensor.
    #[serde(default)]
    pub output: TensorSpec,
    /// How to tile the model.
    #[serde(default)]
    pub tiling: TilingSpec,
    /// Documentation only: the camera the model assumes, its architecture, its training.
    #[serde(default)]
    pub camera: Option<toml::Table>,
    /// Documentation only.
    #[serde(default)]
    pub architecture: Option<toml::Table>,
    /// Documentation only.
    #[serde(default)]
    pub training: Option<toml::Table>,
}

/// `[input]` / `[output]` of a sidecar.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Tensor name in the ONNX graph.
    #[serde(default)]
    pub name: String,
    /// Element type (only `float32`).
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// Axes, letters from `b`, `c`, `y`, `x` (e.g. `bcyx`, `byxc`, `yx`).
    #[serde(default = "default_axes")]
    pub axes: String,
    /// Shape, for information (`[1, 1, "H", "W"]`).
    #[serde(default)]
    pub shape: Option<toml::Value>,
    /// Units of the values, for information.
    #[serde(default)]
    pub units: Option<String>,
}

impl Default for TensorSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            dtype: default_dtype(),
            axes: default_axes(),
            shape: None,
            units: None,
        }
    }
}

/// `[tiling]` of a sidecar.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilingSpec {
    /// Spatial input sizes must be multiples of this.
    #[serde(default = "one")]
    pub size_multiple: usize,
    /// Context margin needed around a tile (at least the receptive-field radius), pixels.
    #[serde(default)]
    pub halo: usize,
    /// Preferred output tile side in pixels (0 = automatic).
    #[serde(default)]
    pub preferred_tile: usize,
    /// Receptive-field radius, for information.
    #[serde(default)]
    pub receptive_radius: Option<usize>,
    /// Whether tiles must start on the size multiple (the tiler always aligns them).
    #[serde(default)]
    pub grid_aligned_tiles: Option<bool>,
}

impl Default for TilingSpec {
    fn default() -> Self {
        Self {
            size_multiple: 1,
            halo: 0,
            preferred_tile: 0,
            receptive_radius: None,
            grid_aligned_tiles: None,
        }
    }
}

fn default_weights() -> PathBuf {
    "model.onnx".into()
}

fn default_axes() -> String {
    "bcyx".into()
}

fn default_dtype() -> String {
    "float32".into()
}

fn one() -> usize {
    1
}

impl ModelSidecar {
    /// Parse sidecar text (`model.toml`).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_string())
    }

    /// The package this sidecar describes, its ONNX file at `onnx`. Opens no file.
    pub fn into_package(self, onnx: PathBuf, format: &str) -> Result<ModelPackage, String> {
        for t in [&self.input, &self.output] {
            if t.dtype != "float32" {
                return Err(format!(
                    "tensor {:?} is {}; only float32 is supported",
                    t.name, t.dtype
                ));
            }
        }
        if self.format.as_deref().is_some_and(|f| f != "onnx") {
            return Err(format!(
                "format {:?} is not supported (only onnx)",
                self.format
            ));
        }
        let t = &self.tiling;
        if t.size_multiple == 0 {
            return Err("tiling.size_multiple must be at least 1".into());
        }
        Ok(ModelPackage {
            input_axes: axes_from_letters(&self.input.axes, &self.input.name)?,
            output_axes: axes_from_letters(&self.output.axes, &self.output.name)?,
            name: self.name,
            description: self.description,
            format: format.into(),
            onnx,
            sha256: None,
            input_name: self.input.name,
            output_name: self.output.name,
            input_channels: vec![String::new()],
            preprocessing: Vec::new(),
            postprocessing: Vec::new(),
            size: SizeRule::new(t.size_multiple, t.size_multiple)?,
            halo: t.halo,
            preferred_tile: Some(t.preferred_tile).filter(|&n| n > 0),
            test: None,
            license: self.license,
            detector: None,
        })
    }
}

/// What kind of file describes a package.
enum Descriptor {
    Rdf(PathBuf),
    Sidecar(PathBuf),
    Bare,
}

fn is_rdf_name(p: &Path) -> bool {
    p.file_name().is_some_and(|n| {
        let n = n.to_string_lossy();
        RDF_NAMES.contains(&n.as_ref()) || n.ends_with(".bioimageio.yaml")
    })
}

fn descriptor(path: &Path) -> Result<Descriptor, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if path.is_dir() {
        let found = RDF_NAMES
            .iter()
            .map(|n| path.join(n))
            .chain(
                std::fs::read_dir(path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| is_rdf_name(p)),
            )
            .find(|p| p.is_file());
        return match found {
            Some(rdf) => Ok(Descriptor::Rdf(rdf)),
            None if path.join("model.toml").is_file() => {
                Ok(Descriptor::Sidecar(path.join("model.toml")))
            }
            None => Err(
                "folder holds no rdf.yaml, bioimageio.yaml, *.bioimageio.yaml or model.toml".into(),
            ),
        };
    }
    match ext {
        "yaml" | "yml" => Ok(Descriptor::Rdf(path.to_path_buf())),
        "toml" => Ok(Descriptor::Sidecar(path.to_path_buf())),
        "onnx" => Ok(match path.with_extension("toml") {
            sc if sc.is_file() => Descriptor::Sidecar(sc),
            _ => Descriptor::Bare,
        }),
        _ if !path.exists() => Err("not found".into()),
        _ => Err(
            "expected a bioimage.io rdf.yaml, a model.toml, an .onnx file, or a folder holding one"
                .into(),
        ),
    }
}

/// Hex SHA-256 of a file.
fn sha256_of(path: &Path) -> Result<String, String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl ModelPackage {
    /// Open a package: a bioimage.io description, a sidecar, a bare `.onnx`, or a folder.
    pub fn open(path: &Path) -> Result<Self, InferenceError> {
        let err = |problem: String| InferenceError::Model {
            path: path.display().to_string(),
            problem,
        };
        let package = match descriptor(path).map_err(err)? {
            Descriptor::Rdf(rdf) => {
                super::bioimageio::read(&rdf).map_err(|problem| InferenceError::Model {
                    path: rdf.display().to_string(),
                    problem,
                })?
            }
            Descriptor::Sidecar(sc) => {
                let text = std::fs::read_to_string(&sc)
                    .map_err(|e| err(format!("cannot read {}: {e}", sc.display())))?;
                let sidecar = ModelSidecar::from_toml(&text)
                    .map_err(|e| err(format!("{}: {e}", sc.display())))?;
                let onnx = if path.extension().is_some_and(|e| e == "onnx") {
                    path.to_path_buf()
                } else {
                    sc.parent().unwrap_or(Path::new(".")).join(&sidecar.weights)
                };
                sidecar.into_package(onnx, "toml sidecar").map_err(err)?
            }
            Descriptor::Bare => Self::bare(path),
        };
        package.check().map_err(err)?;
        Ok(package)
    }

    /// Defaults for an ONNX file with no description.
    fn bare(path: &Path) -> Self {
        Self {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            description: String::new(),
            format: "onnx".into(),
            onnx: path.to_path_buf(),
            sha256: None,
            input_name: String::new(),
            output_name: String::new(),
            input_axes: vec![Axis::Batch, Axis::Channel, Axis::Y, Axis::X],
            output_axes: vec![Axis::Batch, Axis::Channel, Axis::Y, Axis::X],
            input_channels: vec![String::new()],
            preprocessing: Vec::new(),
            postprocessing: Vec::new(),
            size: SizeRule::any(),
            halo: 0,
            preferred_tile: None,
            test: None,
            license: String::new(),
            detector: None,
        }
    }

    /// Check what the description alone decides (tile, halo, size rule); opens no file.
    pub fn check_layout(&self) -> Result<(), String> {
        for (what, n) in [
            ("halo", self.halo),
            ("preferred tile", self.preferred_tile.unwrap_or(0)),
            ("size step", self.size.step),
            ("minimum size", self.size.min),
        ] {
            if n > MAX_LAYOUT_PX {
                return Err(format!(
                    "{what} {n} is larger than the {MAX_LAYOUT_PX} pixels supported"
                ));
            }
        }
        if let Some(t) = self.preferred_tile
            && (t % self.size.step != 0 || t <= 2 * self.halo)
        {
            return Err(format!(
                "preferred tile {t} must be a multiple of the size step {} and larger than twice the halo {}",
                self.size.step, self.halo
            ));
        }
        Ok(())
    }

    /// [`Self::check_layout`], then the files: weights present with the SHA-256 described,
    /// test tensors present.
    fn check(&self) -> Result<(), String> {
        self.check_layout()?;
        if !self.onnx.is_file() {
            return Err(format!("weights {} not found", self.onnx.display()));
        }
        if let Some(want) = &self.sha256 {
            let got = sha256_of(&self.onnx)?;
            if !got.eq_ignore_ascii_case(want) {
                return Err(format!(
                    "weights {} have SHA-256 {got}, the description says {want}: the file is corrupt or not the one described",
                    self.onnx.display()
                ));
            }
        }
        if let Some(t) = &self.test {
            for f in [&t.input, &t.output] {
                if !f.is_file() {
                    return Err(format!("test tensor {} not found", f.display()));
                }
            }
        }
        Ok(())
    }

    /// Tiling for this model: `tile` if non-zero, else the package's preferred tile, else
    /// automatic (whole frames for models without a halo, else tiles of at least 256 pixels).
    pub fn tiling(&self, tile: usize) -> Tiling {
        let auto = if self.halo == 0 {
            0
        } else {
            // Saturating: a checked package (`check_layout`) is far from overflowing.
            (256usize.max(self.halo.saturating_mul(4)))
                .div_ceil(self.size.step)
                .saturating_mul(self.size.step)
        };
        let tile = match (tile, self.preferred_tile) {
            (0, Some(p)) => p,
            (0, None) => auto,
            (t, _) => t,
        };
        Tiling {
            tile,
            halo: self.halo,
            multiple: self.size.step,
            min_size: self.size.min,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("scopepilot-pkg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_sidecar_folder_resolves_its_weights() {
        let d = dir("ok");
        std::fs::write(d.join("net.onnx"), b"x").unwrap();
        std::fs::write(
            d.join("model.toml"),
            "name = \"n\"\nweights = \"net.onnx\"\n[tiling]\npreferred_tile = 64\nhalo = 8\nsize_multiple = 16\n",
        )
        .unwrap();
        let p = ModelPackage::open(&d).unwrap();
        assert_eq!(p.onnx, d.join("net.onnx"));
        assert_eq!(
            p.tiling(0),
            Tiling {
                tile: 64,
                halo: 8,
                multiple: 16,
                min_size: 16,
            }
        );
        assert_eq!(p.tiling(128).tile, 128);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_bare_onnx_file_gets_whole_frame_defaults() {
        let d = dir("bare");
        std::fs::write(d.join("m.onnx"), b"x").unwrap();
        let p = ModelPackage::open(&d.join("m.onnx")).unwrap();
        assert_eq!((p.name.as_str(), p.format.as_str()), ("m", "onnx"));
        assert_eq!(
            p.tiling(0),
            Tiling {
                tile: 0,
                halo: 0,
                multiple: 1,
                min_size: 1,
            }
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn bad_packages_are_rejected_with_the_reason() {
        let d = dir("bad");
        let cases = [
            ("name = \"n\"\n", "weights"),
            (
                "name = \"n\"\nweights = \"m.onnx\"\n[input]\naxes = \"bxyc\"\n",
                "x before y",
            ),
            (
                "name = \"n\"\nweights = \"m.onnx\"\n[tiling]\npreferred_tile = 30\nsize_multiple = 16\n",
                "multiple",
            ),
            ("nam = \"n\"\n", "nam"),
        ];
        std::fs::write(d.join("m.onnx"), b"x").unwrap();
        for (text, want) in cases {
            std::fs::write(d.join("model.toml"), text).unwrap();
            let e = ModelPackage::open(&d).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(ModelPackage::open(&d.join("weights.bin")).is_err());
        let _ = std::fs::remove_dir_all(d);
    }
}
