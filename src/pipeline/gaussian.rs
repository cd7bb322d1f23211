//! `GaussianStage`: a separable Gaussian blur, the classical denoising baseline that learned
//! denoisers must beat. Input u8 / u16 / f32, output f32 from the stage's own frame pool;
//! borders replicate the edge pixel. No allocation per frame once the pool is warm.

use serde::Deserialize;

use super::stage::{Emitter, F32Output, Stage, StageError};
use crate::frame::{Frame, FramePool, Pixels};

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

/// A separable Gaussian blur with its scratch buffers (reused across frames).
///
/// Both passes are written as sums of shifted, scaled rows (`dst += w_k * src[k..]`), which
/// the compiler vectorises; borders replicate the edge pixel.
#[derive(Debug, Clone)]
pub struct GaussianBlur {
    kernel: Vec<f32>,
    padded_row: Vec<f32>,
    tmp: Vec<f32>,
}

impl GaussianBlur {
    /// A blur of standard deviation `sigma` pixels.
    pub fn new(sigma: f32) -> Self {
        Self {
            kernel: gaussian_kernel(sigma),
            padded_row: Vec::new(),
            tmp: Vec::new(),
        }
    }

    /// Blur `input` (any pixel type, `width` pixels per row) into `out`.
    pub fn apply(&mut self, input: &Pixels, width: usize, out: &mut [f32]) {
        let n = input.len();
        let height = n / width;
        let r = self.kernel.len() / 2;
        self.padded_row.resize(width + 2 * r, 0.0);
        self.tmp.resize(n, 0.0);
        let (k, row, tmp) = (&self.kernel, &mut self.padded_row, &mut self.tmp);
        // Horizontal pass into `tmp`.
        for y in 0..height {
            let range = y * width..(y + 1) * width;
            let inner = &mut row[r..r + width];
            match input {
                Pixels::U8(v) => inner
                    .iter_mut()
                    .zip(&v[range.clone()])
                    .for_each(|(d, s)| *d = *s as f32),
                Pixels::U16(v) => inner
                    .iter_mut()
                    .zip(&v[range.clone()])
                    .for_each(|(d, s)| *d = *s as f32),
                Pixels::F32(v) => inner.copy_from_slice(&v[range.clone()]),
            }
            let (first, last) = (row[r], row[r + width - 1]);
            row[..r].fill(first);
            row[r + width..].fill(last);
            let dst = &mut tmp[range];
            dst.fill(0.0);
            for (j, kk) in k.iter().enumerate() {
                dst.iter_mut()
                    .zip(&row[j..j + width])
                    .for_each(|(d, s)| *d += kk * s);
            }
        }
        // Vertical pass into `out`.
        for y in 0..height {
            let dst = &mut out[y * width..(y + 1) * width];
            dst.fill(0.0);
            for (j, kk) in k.iter().enumerate() {
                let sy =
                    (y as isize + j as isize - r as isize).clamp(0, height as isize - 1) as usize;
                let src = &tmp[sy * width..(sy + 1) * width];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += kk * s);
            }
        }
    }
}

/// The Gaussian blur stage.
#[derive(Debug)]
pub struct GaussianStage {
    params: GaussianParams,
    blur: GaussianBlur,
    pool: Option<FramePool>,
}

impl GaussianStage {
    /// A stage with these parameters.
    pub fn new(params: GaussianParams) -> Self {
        Self {
            blur: GaussianBlur::new(params.sigma),
            params,
            pool: None,
        }
    }
}

impl Stage for GaussianStage {
    fn kind(&self) -> &'static str {
        "gaussian"
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        let mut output = F32Output::acquire(&mut self.pool, input, self.params.pool_frames)?;
        self.blur
            .apply(input.pixels(), input.width() as usize, output.pixels());
        out.emit(output.publish());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blur(input: &Pixels, w: usize, sigma: f32) -> Vec<f32> {
        let mut out = vec![0.0; input.len()];
        GaussianBlur::new(sigma).apply(input, w, &mut out);
        out
    }

    /// Straightforward reference: clamp-to-edge 2-D convolution with the same kernel.
    fn reference(input: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
        let k = gaussian_kernel(sigma);
        let r = (k.len() / 2) as isize;
        let at = |x: isize, y: isize| {
            input[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize]
        };
        let mut out = vec![0.0; w * h];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut acc = 0.0;
                for (j, kj) in k.iter().enumerate() {
                    for (i, ki) in k.iter().enumerate() {
                        acc += kj * ki * at(x + i as isize - r, y + j as isize - r);
                    }
                }
                out[y as usize * w + x as usize] = acc;
            }
        }
        out
    }

    #[test]
    fn matches_a_direct_2d_convolution_including_borders() {
        let (w, h) = (23usize, 17usize);
        let mut rng = crate::source::simulated::random::Rng::new(9);
        let img: Vec<f32> = (0..w * h).map(|_| rng.range(0.0, 1000.0) as f32).collect();
        let fast = blur(&Pixels::F32(img.clone()), w, 1.3);
        let slow = reference(&img, w, h, 1.3);
        for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert!((a - b).abs() < 1e-2, "pixel {i}: {a} vs {b}");
        }
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
