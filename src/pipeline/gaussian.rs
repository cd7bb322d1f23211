//! `GaussianStage`: a separable Gaussian blur, the classical denoising baseline that learned
//! denoisers must beat. Input u8 / u16 / f32, output f32 from the stage's own frame pool;
//! borders replicate the edge pixel. No allocation per frame once the pool is warm.

use serde::Deserialize;

use super::stage::{Emitter, Stage, StageError};
use crate::frame::{Frame, FramePool, FrameSpec, PixelType, Pixels};

/// Parameters of the `gaussian` stage (`params = { sigma = 1.5 }`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianParams {
    /// Standard deviation in pixels.
    pub sigma: f32,
    /// Output buffers kept by the stage.
    pub pool_frames: usize,
}

impl Default for GaussianParams {
    fn default() -> Self {
        Self {
            sigma: 1.5,
            pool_frames: 32,
        }
    }
}

impl GaussianParams {
    /// Problems with these parameters, as `(key, problem)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(self.sigma > 0.0 && self.sigma <= 64.0) {
            out.push((
                "sigma",
                format!("must be in (0, 64] pixels, got {}", self.sigma),
            ));
        }
        if self.pool_frames < 2 {
            out.push((
                "pool_frames",
                format!("must be at least 2, got {}", self.pool_frames),
            ));
        }
        out
    }
}

/// Normalised 1-D Gaussian kernel of radius ceil(3 sigma).
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as i32;
    let mut k: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// The Gaussian blur stage.
#[derive(Debug)]
pub struct GaussianStage {
    params: GaussianParams,
    kernel: Vec<f32>,
    pool: Option<FramePool>,
    row: Vec<f32>,
    tmp: Vec<f32>,
}

impl GaussianStage {
    /// A stage with these parameters.
    pub fn new(params: GaussianParams) -> Self {
        Self {
            kernel: gaussian_kernel(params.sigma),
            params,
            pool: None,
            row: Vec::new(),
            tmp: Vec::new(),
        }
    }

    fn pool_for(&mut self, spec: FrameSpec) -> &mut FramePool {
        let out_spec = FrameSpec::new(spec.width, spec.height, PixelType::F32);
        if self.pool.as_ref().is_none_or(|p| p.spec() != out_spec) {
            let n = self.params.pool_frames;
            self.pool = Some(FramePool::new(out_spec, n / 2, n));
            self.row = vec![0.0; spec.width as usize];
            self.tmp = vec![0.0; spec.pixel_count()];
        }
        self.pool.as_mut().expect("pool just set")
    }
}

/// Blur the row `src` horizontally into `dst` with replicated borders.
fn blur_row(src: &[f32], dst: &mut [f32], k: &[f32]) {
    let r = k.len() / 2;
    let w = src.len();
    let at = |i: isize| src[i.clamp(0, w as isize - 1) as usize];
    for (x, d) in dst.iter_mut().enumerate() {
        *d = if x >= r && x + r < w {
            src[x - r..=x + r].iter().zip(k).map(|(s, kk)| s * kk).sum()
        } else {
            k.iter()
                .enumerate()
                .map(|(j, kk)| kk * at(x as isize + j as isize - r as isize))
                .sum()
        };
    }
}

/// Blur `input` (any pixel type) into `out` using `row` and `tmp` as scratch.
pub fn gaussian_blur(
    input: &Pixels,
    width: usize,
    kernel: &[f32],
    row: &mut [f32],
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let height = input.len() / width;
    for y in 0..height {
        let range = y * width..(y + 1) * width;
        match input {
            Pixels::U8(v) => row
                .iter_mut()
                .zip(&v[range.clone()])
                .for_each(|(d, s)| *d = *s as f32),
            Pixels::U16(v) => row
                .iter_mut()
                .zip(&v[range.clone()])
                .for_each(|(d, s)| *d = *s as f32),
            Pixels::F32(v) => row.copy_from_slice(&v[range.clone()]),
        }
        blur_row(row, &mut tmp[range], kernel);
    }
    let r = kernel.len() / 2;
    for y in 0..height {
        let dst = &mut out[y * width..(y + 1) * width];
        dst.fill(0.0);
        for (j, kk) in kernel.iter().enumerate() {
            let sy = (y as isize + j as isize - r as isize).clamp(0, height as isize - 1) as usize;
            let src = &tmp[sy * width..(sy + 1) * width];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += kk * s);
        }
    }
}

impl Stage for GaussianStage {
    fn kind(&self) -> &'static str {
        "gaussian"
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        let spec = input.spec();
        let width = spec.width as usize;
        self.pool_for(spec);
        let (pool, kernel, row, tmp) = (
            self.pool.as_mut().expect("pool set"),
            &self.kernel,
            &mut self.row,
            &mut self.tmp,
        );
        let Some(mut writer) = pool.acquire() else {
            return Err(StageError(format!(
                "all {} output buffers are in use downstream; frame {} skipped",
                pool.allocated(),
                input.meta().frame_number
            )));
        };
        let (meta, pixels) = writer.parts_mut();
        *meta = *input.meta();
        let Pixels::F32(dst) = pixels else {
            return Err(StageError("gaussian output pool is not f32".into()));
        };
        gaussian_blur(input.pixels(), width, kernel, row, tmp, dst);
        out.emit(writer.publish());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blur(input: &Pixels, w: usize, sigma: f32) -> Vec<f32> {
        let k = gaussian_kernel(sigma);
        let n = input.len();
        let (mut row, mut tmp, mut out) = (vec![0.0; w], vec![0.0; n], vec![0.0; n]);
        gaussian_blur(input, w, &k, &mut row, &mut tmp, &mut out);
        out
    }

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = gaussian_kernel(1.5);
        assert_eq!(k.len(), 11);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((k[0] - k[10]).abs() < 1e-9 && k[5] > k[4]);
    }

    #[test]
    fn constant_images_are_unchanged_and_impulses_spread_with_the_right_variance() {
        let flat = blur(&Pixels::U16(vec![1000; 20 * 15]), 20, 2.0);
        assert!(flat.iter().all(|v| (v - 1000.0).abs() < 1e-2));
        let (w, h) = (41usize, 41usize);
        let mut img = vec![0.0f32; w * h];
        img[20 * w + 20] = 1.0;
        let out = blur(&Pixels::F32(img), w, 2.0);
        let total: f32 = out.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "mass preserved: {total}");
        let var_x: f32 = out
            .iter()
            .enumerate()
            .map(|(i, v)| v * ((i % w) as f32 - 20.0).powi(2))
            .sum();
        assert!((var_x - 4.0).abs() < 0.1, "variance along x {var_x}");
    }

    #[test]
    fn reduces_noise_variance() {
        let (w, h) = (64usize, 64usize);
        let mut rng = crate::source::simulated::random::Rng::new(2);
        let noisy: Vec<f32> = (0..w * h)
            .map(|_| 100.0 + 10.0 * rng.normal() as f32)
            .collect();
        let out = blur(&Pixels::F32(noisy), w, 1.5);
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        let var = out.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / out.len() as f32;
        // White noise variance drops by 1/(4 pi sigma^2) ~ 0.035 for sigma 1.5.
        assert!(var < 100.0 * 0.06, "variance {var}");
    }
}
