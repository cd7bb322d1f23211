//! `LoadedModel`: a model package made runnable on frames. It chains the package's
//! preprocessing (on the whole frame), tiled ONNX Runtime inference with the model's halo, and
//! postprocessing, reusing every buffer across frames. Loading runs the package's test tensors
//! through that same chain (the self-test) and refuses the model when the result differs.

use std::path::{Path, PathBuf};

use super::npy::NpyArray;
use super::package::{Axis, ModelPackage, Tolerance};
use super::tiling::{TileBuffers, Tiling, run_tiled_planes};
use super::{ImageModel, InferenceConfig, InferenceError, OrtRuntime, ProviderSelection};
use crate::frame::Pixels;

/// Smallest output tile side accepted: smaller tiles only multiply the halo work.
pub const MIN_TILE: usize = 32;

/// Outcome of a passed self-test.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfTestReport {
    /// Test image size (height, width).
    pub size: (usize, usize),
    /// Largest absolute difference from the expected output.
    pub max_abs_diff: f64,
    /// Values outside the tolerance (allowed up to the package's per-million budget).
    pub mismatched: usize,
}

/// What status reports say about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Package name.
    pub name: String,
    /// The path it was opened from.
    pub path: PathBuf,
    /// `bioimage.io 0.5.4`, `toml sidecar` or `onnx`.
    pub format: String,
    /// What the model does.
    pub description: String,
    /// ONNX input and output names.
    pub tensors: (String, String),
    /// Halo per side, in pixels.
    pub halo: usize,
    /// Output tile side in use (0 = whole frames).
    pub tile: usize,
    /// Preprocessing steps, described.
    pub preprocessing: Vec<String>,
    /// Postprocessing steps, described.
    pub postprocessing: Vec<String>,
    /// Execution provider requested and used.
    pub provider: ProviderSelection,
    /// The self-test, when the package has test tensors.
    pub self_test: Option<SelfTestReport>,
}

/// A model ready to run on frames.
pub struct LoadedModel {
    package: ModelPackage,
    path: PathBuf,
    model: ImageModel,
    tiling: Tiling,
    buffers: TileBuffers,
    preprocessed: Vec<f32>,
    scratch: Vec<f32>,
    self_test: Option<SelfTestReport>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.package.name)
            .field("path", &self.path)
            .field("tiling", &self.tiling)
            .finish()
    }
}

impl LoadedModel {
    /// Open the package at `path`, load it and run its self-test. `tile` overrides the tile
    /// side (0 = the package's choice).
    pub fn open(
        path: &Path,
        tile: usize,
        config: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let package = ModelPackage::open(path)?;
        if tile != 0 && tile < MIN_TILE {
            return Err(InferenceError::Model {
                path: path.display().to_string(),
                problem: format!(
                    "tile {tile} is too small: use 0 (the model's choice) or at least {MIN_TILE} pixels"
                ),
            });
        }
        let runtime = OrtRuntime::get_or_init(config)?;
        let model = ImageModel::load(&runtime, &package, config)?;
        let mut loaded = Self {
            tiling: package.tiling(tile),
            package,
            path: path.to_path_buf(),
            model,
            buffers: TileBuffers::default(),
            preprocessed: Vec::new(),
            scratch: Vec::new(),
            self_test: None,
        };
        if loaded.package.test.is_some() {
            let report = loaded
                .self_test()
                .map_err(|problem| InferenceError::Model {
                    path: path.display().to_string(),
                    problem: format!("self-test failed: {problem}"),
                })?;
            loaded.self_test = Some(report);
        }
        Ok(loaded)
    }

    /// The package.
    pub fn package(&self) -> &ModelPackage {
        &self.package
    }

    /// What status reports show.
    pub fn summary(&self) -> ModelSummary {
        let describe = |steps: &[super::processing::Processing]| {
            steps.iter().map(|p| p.describe()).collect::<Vec<_>>()
        };
        ModelSummary {
            name: self.package.name.clone(),
            path: self.path.clone(),
            format: self.package.format.clone(),
            description: self.package.description.clone(),
            tensors: (
                self.model.input_name().to_string(),
                self.model.output_name().to_string(),
            ),
            halo: self.tiling.halo,
            tile: self.tiling.tile,
            preprocessing: describe(&self.package.preprocessing),
            postprocessing: describe(&self.package.postprocessing),
            provider: self.model.provider().clone(),
            self_test: self.self_test.clone(),
        }
    }

    /// Whether the model's processing changes nothing (no steps, or only identities), so a
    /// frame can go straight into the model's input tensor.
    fn is_plain(&self) -> bool {
        let p = &self.package;
        p.preprocessing
            .iter()
            .chain(&p.postprocessing)
            .all(super::processing::Processing::is_identity)
    }

    /// Channel planes the model takes (1 for an image model; see
    /// [`ModelPackage::input_channels`]).
    pub fn input_channels(&self) -> usize {
        self.model.input_channels()
    }

    /// Process one `h` x `w` frame (`input`, row-major; all its channel planes one after the
    /// other) into `out` (one plane).
    pub fn process(
        &mut self,
        input: &[f32],
        h: usize,
        w: usize,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        let channels = self.input_channels();
        if input.len() != channels * h * w || out.len() != h * w {
            return Err(InferenceError::Run(format!(
                "buffers of {} and {} values do not fit a {h}x{w} frame of {channels} channel(s)",
                input.len(),
                out.len()
            )));
        }
        let source = if self.package.preprocessing.is_empty() {
            input
        } else {
            self.preprocessed.clear();
            self.preprocessed.extend_from_slice(input);
            for step in &self.package.preprocessing {
                step.apply(&mut self.preprocessed, input, &mut self.scratch);
            }
            &self.preprocessed
        };
        let model = &mut self.model;
        run_tiled_planes(
            source,
            channels,
            h,
            w,
            self.tiling,
            &mut self.buffers,
            out,
            |i, th, tw, o| model.run(i, th, tw, o),
        )?;
        for step in &self.package.postprocessing {
            step.apply(out, input, &mut self.scratch);
        }
        Ok(())
    }

    /// Process a frame's `pixels` into `out`. A frame the model takes whole and unprocessed is
    /// converted straight into the model's input tensor; others go through `input_f32`
    /// (reused across calls) and [`LoadedModel::process`].
    pub fn process_pixels(
        &mut self,
        pixels: &Pixels,
        h: usize,
        w: usize,
        input_f32: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        let plain = self.is_plain();
        if plain && self.tiling.is_direct(h, w) && pixels.len() == h * w {
            return self
                .model
                .run_filled(h, w, |tensor| pixels.convert_into_f32(tensor), out);
        }
        pixels.copy_to_f32(input_f32);
        self.process(input_f32, h, w, out)
    }

    /// Process an `h` x `w` input whose channel planes `fill` writes (all of them, one after
    /// the other). A frame the model takes whole and unprocessed is filled straight into the
    /// model's input tensor; others are filled into `planes` (reused across calls) and go
    /// through [`LoadedModel::process`].
    pub fn process_filled(
        &mut self,
        h: usize,
        w: usize,
        fill: impl FnOnce(&mut [f32]),
        planes: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        let plain = self.is_plain();
        if plain && self.tiling.is_direct(h, w) {
            return self.model.run_filled(h, w, fill, out);
        }
        planes.resize(self.input_channels() * h * w, 0.0);
        fill(planes);
        self.process(planes, h, w, out)
    }

    /// Run the package's test input and compare with its test output.
    pub fn self_test(&mut self) -> Result<SelfTestReport, String> {
        let Some(test) = self.package.test.clone() else {
            return Err("the package has no test tensors".into());
        };
        let read = |p: &Path| NpyArray::read(p).map_err(|e| e.to_string());
        let (input, expected) = (read(&test.input)?, read(&test.output)?);
        let channels = self.input_channels();
        let (h, w) = image_size(&input, &self.package.input_axes, channels, &test.input)?;
        let size = image_size(&expected, &self.package.output_axes, 1, &test.output)?;
        if size != (h, w) {
            return Err(format!(
                "test output is {}x{} but the test input is {h}x{w}",
                size.0, size.1
            ));
        }
        let mut out = vec![0.0; h * w];
        self.process(&input.data, h, w, &mut out)
            .map_err(|e| e.to_string())?;
        compare(&out, &expected.data, w, test.tolerance, &test.output).map(
            |(max_abs_diff, mismatched)| SelfTestReport {
                size: (h, w),
                max_abs_diff,
                mismatched,
            },
        )
    }
}

/// Height and width of a test tensor with these axes (channels must be `channels`, others 1).
fn image_size(
    a: &NpyArray,
    axes: &[Axis],
    channels: usize,
    path: &Path,
) -> Result<(usize, usize), String> {
    if a.shape.len() != axes.len() {
        return Err(format!(
            "{} has shape {:?}, but the tensor's axes are {axes:?}",
            path.display(),
            a.shape
        ));
    }
    let (mut h, mut w) = (1, 1);
    for (&n, axis) in a.shape.iter().zip(axes) {
        match axis {
            Axis::Y => h = n,
            Axis::X => w = n,
            Axis::Channel if n != channels => {
                return Err(format!(
                    "{} has shape {:?}: its channel axis must be {channels}",
                    path.display(),
                    a.shape
                ));
            }
            Axis::Channel => {}
            _ if n != 1 => {
                return Err(format!(
                    "{} has shape {:?}: its {axis:?} axis must be 1",
                    path.display(),
                    a.shape
                ));
            }
            _ => {}
        }
    }
    Ok((h, w))
}

/// Compare `got` with `want`; returns (max |diff|, mismatched count) or why it fails.
fn compare(
    got: &[f32],
    want: &[f32],
    width: usize,
    tol: Tolerance,
    path: &Path,
) -> Result<(f64, usize), String> {
    let mut max = (0.0f64, 0usize);
    let mut mismatched = 0;
    for (i, (&g, &e)) in got.iter().zip(want).enumerate() {
        let diff = (g as f64 - e as f64).abs();
        if diff.is_nan() || diff > tol.absolute + tol.relative * (e as f64).abs() {
            mismatched += 1;
        }
        if diff > max.0 || diff.is_nan() {
            max = (if diff.is_nan() { f64::INFINITY } else { diff }, i);
        }
    }
    let allowed = (tol.mismatched_per_million * got.len() as f64 / 1e6).floor() as usize;
    if mismatched > allowed {
        return Err(format!(
            "{mismatched} of {} values differ from {} beyond the tolerance (relative {}, absolute {}; {allowed} allowed); largest difference {:.6} at (y {}, x {})",
            got.len(),
            path.display(),
            tol.relative,
            tol.absolute,
            max.0,
            max.1 / width.max(1),
            max.1 % width.max(1)
        ));
    }
    Ok((max.0, mismatched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_counts_values_outside_the_tolerance() {
        let tol = Tolerance {
            relative: 1e-3,
            absolute: 1e-4,
            mismatched_per_million: 0.0,
        };
        let want = [1000.0f32, 0.0, 5.0, 7.0];
        let ok = [1000.9f32, 0.00005, 5.0, 7.0];
        let (max, n) = compare(&ok, &want, 2, tol, Path::new("t.npy")).unwrap();
        assert_eq!(n, 0);
        assert!((max - 0.9).abs() < 1e-3, "{max}");
        let bad = [1000.0f32, 0.0, 5.0, 7.5];
        let e = compare(&bad, &want, 2, tol, Path::new("t.npy")).unwrap_err();
        assert!(
            e.contains("1 of 4 values") && e.contains("(y 1, x 1)"),
            "{e}"
        );
        let nan = [f32::NAN, 0.0, 5.0, 7.0];
        assert!(compare(&nan, &want, 2, tol, Path::new("t.npy")).is_err());
    }

    #[test]
    fn test_tensor_shapes_must_fit_the_axes() {
        let a = NpyArray {
            shape: vec![1, 1, 4, 6],
            dtype: "<f4".into(),
            data: vec![0.0; 24],
        };
        let bcyx = [Axis::Batch, Axis::Channel, Axis::Y, Axis::X];
        assert_eq!(image_size(&a, &bcyx, 1, Path::new("a")).unwrap(), (4, 6));
        let e = image_size(&a, &[Axis::Y, Axis::X], 1, Path::new("a")).unwrap_err();
        assert!(e.contains("axes"), "{e}");
        let three = NpyArray {
            shape: vec![1, 3, 4, 6],
            ..a
        };
        let e = image_size(&three, &bcyx, 1, Path::new("a")).unwrap_err();
        assert!(e.contains("channel axis must be 1"), "{e}");
        assert_eq!(
            image_size(&three, &bcyx, 3, Path::new("a")).unwrap(),
            (4, 6)
        );
        let two_batches = NpyArray {
            shape: vec![2, 3, 4, 6],
            ..three
        };
        let e = image_size(&two_batches, &bcyx, 3, Path::new("a")).unwrap_err();
        assert!(e.contains("Batch axis must be 1"), "{e}");
    }
}
