//! Model packages: an ONNX file plus a small TOML sidecar (`model.toml`) saying how to tile
//! it. `ModelPackage::open` accepts the sidecar, its folder, or a bare `.onnx` (then a sibling
//! `<stem>.toml` is used if present, else defaults: whole-frame, no halo).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::InferenceError;
use super::tiling::Tiling;

/// The sidecar (`model.toml`), as written by `training/train_denoiser.py`.
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
    /// Axes; only `bcyx` (one image, one channel) is supported.
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
    /// Preferred output tile side in pixels (0 = whole frame).
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

/// A model on disk, checked but not loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPackage {
    /// The sidecar (or defaults for a bare ONNX file).
    pub sidecar: ModelSidecar,
    /// The ONNX file.
    pub onnx: PathBuf,
}

impl ModelPackage {
    /// Open a package from a sidecar, a folder holding `model.toml`, or a bare `.onnx`.
    pub fn open(path: &Path) -> Result<Self, InferenceError> {
        let err = |problem: String| InferenceError::Model {
            path: path.display().to_string(),
            problem,
        };
        let sidecar_path = if path.is_dir() {
            Some(path.join("model.toml"))
        } else if path.extension().is_some_and(|e| e == "toml") {
            Some(path.to_path_buf())
        } else if path.extension().is_some_and(|e| e == "onnx") {
            Some(path.with_extension("toml")).filter(|p| p.is_file())
        } else {
            return Err(err(
                "expected a model.toml, a folder holding one, or an .onnx file".into(),
            ));
        };
        let package = match sidecar_path {
            Some(sc) => {
                let text = std::fs::read_to_string(&sc)
                    .map_err(|e| err(format!("cannot read {}: {e}", sc.display())))?;
                let sidecar: ModelSidecar = toml::from_str(&text)
                    .map_err(|e| err(format!("{}: {}", sc.display(), e.to_string().trim())))?;
                let base = sc.parent().unwrap_or(Path::new("."));
                let onnx = if path.extension().is_some_and(|e| e == "onnx") {
                    path.to_path_buf()
                } else {
                    base.join(&sidecar.weights)
                };
                Self { sidecar, onnx }
            }
            None => Self {
                sidecar: ModelSidecar {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    description: String::new(),
                    weights: path.to_path_buf(),
                    license: String::new(),
                    format: None,
                    opset: None,
                    input: TensorSpec::default(),
                    output: TensorSpec::default(),
                    tiling: TilingSpec::default(),
                    camera: None,
                    architecture: None,
                    training: None,
                },
                onnx: path.to_path_buf(),
            },
        };
        package.check().map_err(err)?;
        Ok(package)
    }

    fn check(&self) -> Result<(), String> {
        let s = &self.sidecar;
        for t in [&s.input, &s.output] {
            if t.axes != "bcyx" || t.dtype != "float32" {
                return Err(format!(
                    "tensor {:?} is {} {:?}; only float32 \"bcyx\" is supported",
                    t.name, t.dtype, t.axes
                ));
            }
        }
        if s.format.as_deref().is_some_and(|f| f != "onnx") {
            return Err(format!(
                "format {:?} is not supported (only onnx)",
                s.format
            ));
        }
        let t = &s.tiling;
        if t.size_multiple == 0 {
            return Err("tiling.size_multiple must be at least 1".into());
        }
        if t.preferred_tile != 0
            && (t.preferred_tile % t.size_multiple != 0 || t.preferred_tile <= 2 * t.halo)
        {
            return Err(format!(
                "tiling.preferred_tile {} must be a multiple of size_multiple {} and larger than twice the halo {}",
                t.preferred_tile, t.size_multiple, t.halo
            ));
        }
        if !self.onnx.is_file() {
            return Err(format!("weights {} not found", self.onnx.display()));
        }
        Ok(())
    }

    /// Tiling for this model, with the tile side overridden when `tile` is non-zero.
    pub fn tiling(&self, tile: usize) -> Tiling {
        let t = &self.sidecar.tiling;
        Tiling {
            tile: if tile == 0 { t.preferred_tile } else { tile },
            halo: t.halo,
            multiple: t.size_multiple,
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
                multiple: 16
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
        assert_eq!(p.sidecar.name, "m");
        assert_eq!(
            p.tiling(0),
            Tiling {
                tile: 0,
                halo: 0,
                multiple: 1
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
                "name = \"n\"\nweights = \"m.onnx\"\n[input]\naxes = \"byxc\"\n",
                "only float32 \"bcyx\"",
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
