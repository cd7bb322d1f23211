//! Pre- and postprocessing of a model's tensors, as bioimage.io defines them, applied to whole
//! single-channel frames (before tiling, so per-sample statistics are the frame's own).
//!
//! Formulas (bioimage.io model spec 0.5 / 0.4; statistics over all pixels of the frame):
//! - `scale_range`: `(x - p_lo) / (p_hi - p_lo + eps)`, `p_lo`/`p_hi` the `min_percentile` /
//!   `max_percentile` percentiles (linear interpolation, as `numpy.percentile`), taken from
//!   `reference_tensor` when given;
//! - `zero_mean_unit_variance`: `(x - mean) / (std + eps)` (population std), or with fixed
//!   `mean` / `std` (`fixed_zero_mean_unit_variance`, or mode `fixed` in 0.4);
//! - `scale_mean_variance`: `(x - mean(x)) / (std(x) + eps) * (std(ref) + eps) + mean(ref)`;
//! - `scale_linear`: `x * gain + offset`; `clip`: to `[min, max]`; `sigmoid`;
//!   `binarize`: `x > threshold`; `ensure_dtype`: float types keep values, integer types are
//!   truncated towards zero and saturated to the type's range.
//!
//! A `reference_tensor` always means the model's input as it arrived (before preprocessing).

/// One processing step.
#[derive(Debug, Clone, PartialEq)]
pub enum Processing {
    /// Cast to a dtype (float types are a no-op on f32 data).
    EnsureDtype {
        /// Target dtype, e.g. `float32` or `uint8`.
        dtype: String,
    },
    /// Percentile normalisation.
    ScaleRange {
        /// Lower percentile (0-100).
        min_percentile: f64,
        /// Upper percentile (0-100).
        max_percentile: f64,
        /// Added to the denominator.
        eps: f64,
        /// Take the percentiles from the model input instead of this tensor.
        from_input: bool,
    },
    /// Standardisation with the tensor's own mean and std.
    ZeroMeanUnitVariance {
        /// Added to the std.
        eps: f64,
    },
    /// Standardisation with given mean and std.
    FixedZeroMeanUnitVariance {
        /// Mean subtracted.
        mean: f64,
        /// Std divided by.
        std: f64,
        /// Added to the std.
        eps: f64,
    },
    /// Give this tensor the mean and std of the model input.
    ScaleMeanVariance {
        /// Added to both stds.
        eps: f64,
    },
    /// `x * gain + offset`.
    ScaleLinear {
        /// Factor.
        gain: f64,
        /// Offset.
        offset: f64,
    },
    /// Clamp to `[min, max]` (either may be open).
    Clip {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
    /// Logistic function.
    Sigmoid,
    /// 1 where `x > threshold`, else 0.
    Binarize {
        /// Threshold.
        threshold: f64,
    },
}

/// Mean and population standard deviation.
fn mean_std(x: &[f32]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Two percentiles of `x` with linear interpolation (like `numpy.percentile`), using `scratch`.
fn percentiles(x: &[f32], lo: f64, hi: f64, scratch: &mut Vec<f32>) -> (f64, f64) {
    if x.is_empty() {
        return (0.0, 0.0);
    }
    scratch.clear();
    scratch.extend_from_slice(x);
    let mut at = |p: f64| -> f64 {
        let pos = (p / 100.0).clamp(0.0, 1.0) * (scratch.len() - 1) as f64;
        let i = pos.floor() as usize;
        let (_, &mut a, right) = scratch.select_nth_unstable_by(i, f32::total_cmp);
        let b = right.iter().copied().fold(f32::INFINITY, f32::min);
        let frac = pos - i as f64;
        if frac == 0.0 || right.is_empty() {
            a as f64
        } else {
            a as f64 + (b as f64 - a as f64) * frac
        }
    };
    (at(lo), at(hi))
}

fn saturate(v: f32, lo: f64, hi: f64) -> f32 {
    (v.trunc() as f64).clamp(lo, hi) as f32
}

impl Processing {
    /// Short description for status and logs, e.g. `scale_range(1, 99.8)`.
    pub fn describe(&self) -> String {
        match self {
            Processing::EnsureDtype { dtype } => format!("ensure_dtype({dtype})"),
            Processing::ScaleRange {
                min_percentile,
                max_percentile,
                from_input,
                ..
            } => format!(
                "scale_range({min_percentile}, {max_percentile}{})",
                if *from_input { ", of input" } else { "" }
            ),
            Processing::ZeroMeanUnitVariance { .. } => "zero_mean_unit_variance".into(),
            Processing::FixedZeroMeanUnitVariance { mean, std, .. } => {
                format!("fixed_zero_mean_unit_variance({mean}, {std})")
            }
            Processing::ScaleMeanVariance { .. } => "scale_mean_variance(to input)".into(),
            Processing::ScaleLinear { gain, offset } => format!("scale_linear({gain}, {offset})"),
            Processing::Clip { min, max } => format!(
                "clip({}, {})",
                min.unwrap_or(f64::NEG_INFINITY),
                max.unwrap_or(f64::INFINITY)
            ),
            Processing::Sigmoid => "sigmoid".into(),
            Processing::Binarize { threshold } => format!("binarize({threshold})"),
        }
    }

    /// Check the dtype of `ensure_dtype` and the numbers of the other steps.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Processing::EnsureDtype { dtype } if dtype_range(dtype).is_none() => {
                Err(format!("ensure_dtype: unknown dtype {dtype:?}"))
            }
            Processing::ScaleRange {
                min_percentile,
                max_percentile,
                ..
            } if !(0.0 <= *min_percentile
                && min_percentile < max_percentile
                && *max_percentile <= 100.0) =>
            {
                Err(format!(
                    "scale_range: percentiles must satisfy 0 <= min < max <= 100, got {min_percentile} and {max_percentile}"
                ))
            }
            Processing::FixedZeroMeanUnitVariance { std, .. } if *std < 0.0 => Err(format!(
                "fixed_zero_mean_unit_variance: std must be >= 0, got {std}"
            )),
            _ => Ok(()),
        }
    }

    /// True for a step that changes nothing (`ensure_dtype` to a float type): it can be left
    /// out, so the frame can go straight into the model.
    pub fn is_identity(&self) -> bool {
        matches!(self, Processing::EnsureDtype { dtype } if dtype_range(dtype) == Some(None))
    }

    /// Apply in place to `x`; `input` is the model input as it arrived (for reference stats).
    pub fn apply(&self, x: &mut [f32], input: &[f32], scratch: &mut Vec<f32>) {
        match *self {
            Processing::EnsureDtype { ref dtype } => {
                if let Some((lo, hi)) = dtype_range(dtype).flatten() {
                    x.iter_mut().for_each(|v| *v = saturate(*v, lo, hi));
                }
            }
            Processing::ScaleRange {
                min_percentile,
                max_percentile,
                eps,
                from_input,
            } => {
                let source = if from_input { input } else { &*x };
                let (lo, hi) = percentiles(source, min_percentile, max_percentile, scratch);
                linear(x, 1.0 / (hi - lo + eps), -lo / (hi - lo + eps));
            }
            Processing::ZeroMeanUnitVariance { eps } => {
                let (mean, std) = mean_std(x);
                linear(x, 1.0 / (std + eps), -mean / (std + eps));
            }
            Processing::FixedZeroMeanUnitVariance { mean, std, eps } => {
                linear(x, 1.0 / (std + eps), -mean / (std + eps));
            }
            Processing::ScaleMeanVariance { eps } => {
                let (mean, std) = mean_std(x);
                let (ref_mean, ref_std) = mean_std(input);
                let gain = (ref_std + eps) / (std + eps);
                linear(x, gain, ref_mean - mean * gain);
            }
            Processing::ScaleLinear { gain, offset } => linear(x, gain, offset),
            Processing::Clip { min, max } => {
                let (lo, hi) = (
                    min.unwrap_or(f64::NEG_INFINITY) as f32,
                    max.unwrap_or(f64::INFINITY) as f32,
                );
                x.iter_mut().for_each(|v| *v = v.max(lo).min(hi));
            }
            Processing::Sigmoid => x.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            Processing::Binarize { threshold } => x
                .iter_mut()
                .for_each(|v| *v = if (*v as f64) > threshold { 1.0 } else { 0.0 }),
        }
    }
}

/// `x = x * gain + offset`, computed in f64 (raw camera values near 33000 minus an offset
/// near 33000 would lose digits in f32).
fn linear(x: &mut [f32], gain: f64, offset: f64) {
    x.iter_mut()
        .for_each(|v| *v = (*v as f64 * gain + offset) as f32);
}

/// `Some(None)` for float dtypes (no change), `Some(Some(range))` for integer dtypes.
#[allow(clippy::option_option)]
fn dtype_range(dtype: &str) -> Option<Option<(f64, f64)>> {
    Some(match dtype {
        "float32" | "float64" | "float16" => None,
        "uint8" => Some((0.0, u8::MAX as f64)),
        "uint16" => Some((0.0, u16::MAX as f64)),
        "uint32" => Some((0.0, u32::MAX as f64)),
        "uint64" => Some((0.0, u64::MAX as f64)),
        "int8" => Some((i8::MIN as f64, i8::MAX as f64)),
        "int16" => Some((i16::MIN as f64, i16::MAX as f64)),
        "int32" => Some((i32::MIN as f64, i32::MAX as f64)),
        "int64" => Some((i64::MIN as f64, i64::MAX as f64)),
        "bool" => Some((0.0, 1.0)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_float_ensure_dtype_is_an_identity() {
        let dtype = |d: &str| Processing::EnsureDtype { dtype: d.into() };
        assert!(dtype("float32").is_identity());
        assert!(!dtype("uint8").is_identity());
        let clip = Processing::Clip {
            min: Some(0.0),
            max: Some(1.0),
        };
        assert!(!clip.is_identity());
    }

    #[test]
    fn percentiles_match_numpy_linear_interpolation() {
        // numpy.percentile(np.arange(11.0)[::-1], [1, 99.8]) == [0.1, 9.98]
        let x: Vec<f32> = (0..=10).rev().map(|v| v as f32).collect();
        let (lo, hi) = percentiles(&x, 1.0, 99.8, &mut Vec::new());
        assert!(
            (lo - 0.1).abs() < 1e-9 && (hi - 9.98).abs() < 1e-6,
            "{lo} {hi}"
        );
        assert_eq!(percentiles(&x, 0.0, 100.0, &mut Vec::new()), (0.0, 10.0));
    }

    #[test]
    fn steps_compute_the_documented_formulas() {
        let input = [1.0f32, 2.0, 3.0, 4.0];
        let mut x = input;
        Processing::ZeroMeanUnitVariance { eps: 0.0 }.apply(&mut x, &input, &mut Vec::new());
        let s = 1.25f64.sqrt();
        assert_eq!(x, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s].map(|v| v as f32));
        // Bring a rescaled copy back to the input's mean and std.
        let mut y = [10.0f32, 20.0, 30.0, 40.0];
        Processing::ScaleMeanVariance { eps: 0.0 }.apply(&mut y, &input, &mut Vec::new());
        for (a, b) in y.iter().zip(input) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
        let mut z = [-3.7f32, 0.2, 300.9];
        Processing::EnsureDtype {
            dtype: "uint8".into(),
        }
        .apply(&mut z, &input, &mut Vec::new());
        assert_eq!(z, [0.0, 0.0, 255.0]);
        let mut c = [-1.0f32, 0.5, 2.0];
        Processing::Clip {
            min: Some(0.0),
            max: None,
        }
        .apply(&mut c, &input, &mut Vec::new());
        assert_eq!(c, [0.0, 0.5, 2.0]);
        let mut r = [0.0f32, 5.0, 10.0];
        Processing::ScaleRange {
            min_percentile: 0.0,
            max_percentile: 100.0,
            eps: 0.0,
            from_input: true,
        }
        .apply(&mut r, &input, &mut Vec::new());
        assert_eq!(r, [-1.0 / 3.0, 4.0 / 3.0, 3.0]);
    }

    #[test]
    fn bad_numbers_are_refused() {
        let bad = Processing::ScaleRange {
            min_percentile: 99.0,
            max_percentile: 1.0,
            eps: 1e-6,
            from_input: false,
        };
        assert!(bad.check().unwrap_err().contains("0 <= min < max <= 100"));
        let dtype = Processing::EnsureDtype {
            dtype: "complex64".into(),
        };
        assert!(dtype.check().unwrap_err().contains("complex64"));
    }
}
