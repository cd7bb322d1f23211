//! Tiled inference: run an image-to-image model on frames larger than its preferred tile.
//!
//! The frame is cut into tiles of `tile` x `tile` output pixels. Each tile is run with at least
//! `halo` pixels of real image context on every side (less at the frame border), and only its
//! centre is written back. Input windows start on multiples of the model's size multiple, so
//! that pooling layers see the same grid as in a whole-frame pass, and are extended to that
//! multiple with real pixels, or by reflection beyond the frame edge. When `halo` covers the
//! model's receptive field, the tiled result equals the untiled one: no seams to blend away.

/// Tiling parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Output tile side in pixels (0 = the whole frame in one piece).
    pub tile: usize,
    /// Context margin in pixels on each side of a tile.
    pub halo: usize,
    /// The model needs input sides of `min_size + k * multiple` (1 = any size).
    pub multiple: usize,
    /// Smallest input side the model accepts (windows are padded up to it).
    pub min_size: usize,
}

/// Scratch buffers reused across frames.
#[derive(Debug, Default, Clone)]
pub struct TileBuffers {
    input: Vec<f32>,
    output: Vec<f32>,
}

impl Tiling {
    /// Whether a `height` x `width` frame goes to the model whole, as it is (one tile, a size
    /// the model accepts).
    pub fn is_direct(&self, height: usize, width: usize) -> bool {
        let whole = |n: usize| self.tile == 0 || self.tile >= n;
        whole(height) && whole(width) && self.fit(height) == height && self.fit(width) == width
    }

    /// The smallest input side the model accepts that holds `n` pixels.
    fn fit(&self, n: usize) -> usize {
        let (min, step) = (self.min_size.max(1), self.multiple.max(1));
        if n <= min {
            min
        } else {
            min + (n - min).div_ceil(step) * step
        }
    }
}

/// Reflect an index into `0..n` (`-1 -> 1`, `n -> n - 2`), for padding.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Start offsets of tiles covering `0..n` with tiles of `tile`.
fn starts(n: usize, tile: usize) -> impl Iterator<Item = usize> {
    (0..n.div_ceil(tile)).map(move |k| (k * tile).min(n.saturating_sub(tile)))
}

/// Run `model(input, height, width, output)` over `image` (`height` x `width`) tile by tile,
/// writing into `out`. Errors from the model abort the frame.
pub fn run_tiled<E>(
    image: &[f32],
    height: usize,
    width: usize,
    tiling: Tiling,
    buffers: &mut TileBuffers,
    out: &mut [f32],
    model: impl FnMut(&[f32], usize, usize, &mut [f32]) -> Result<(), E>,
) -> Result<(), E> {
    run_tiled_planes(image, 1, height, width, tiling, buffers, out, model)
}

/// [`run_tiled`] for an input of `channels` planes (`image` holds them one after the other,
/// each `height` x `width`): every tile's window is cut from each plane at the same place, and
/// the model gets the window's planes one after the other. The output has one plane.
#[allow(clippy::too_many_arguments)]
pub fn run_tiled_planes<E>(
    image: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    tiling: Tiling,
    buffers: &mut TileBuffers,
    out: &mut [f32],
    mut model: impl FnMut(&[f32], usize, usize, &mut [f32]) -> Result<(), E>,
) -> Result<(), E> {
    let tile_h = if tiling.tile == 0 {
        height
    } else {
        tiling.tile.min(height)
    };
    let tile_w = if tiling.tile == 0 {
        width
    } else {
        tiling.tile.min(width)
    };
    let halo = if tiling.tile == 0 { 0 } else { tiling.halo };
    // One tile that the model takes as it is: no copies at all.
    if tiling.is_direct(height, width) {
        return model(image, height, width, out);
    }
    for y0 in starts(height, tile_h) {
        for x0 in starts(width, tile_w) {
            // Input window: the tile plus real context, starting on the model's grid...
            let m = tiling.multiple.max(1);
            let (iy0, ix0) = (
                y0.saturating_sub(halo) / m * m,
                x0.saturating_sub(halo) / m * m,
            );
            let (iy1, ix1) = (
                (y0 + tile_h + halo).min(height),
                (x0 + tile_w + halo).min(width),
            );
            // ...and extended to a size the model accepts (reflected only beyond the frame edge).
            let (ih, iw) = (tiling.fit(iy1 - iy0), tiling.fit(ix1 - ix0));
            buffers.input.resize(channels * ih * iw, 0.0);
            buffers.output.resize(ih * iw, 0.0);
            let planes = image.chunks_exact(height * width);
            let windows = buffers.input.chunks_exact_mut(ih * iw);
            for (plane, window) in planes.zip(windows) {
                for ty in 0..ih {
                    let sy = reflect((iy0 + ty) as isize, height);
                    let row = &mut window[ty * iw..(ty + 1) * iw];
                    if ix0 + iw <= width {
                        row.copy_from_slice(&plane[sy * width + ix0..][..iw]);
                    } else {
                        for (tx, v) in row.iter_mut().enumerate() {
                            *v = plane[sy * width + reflect((ix0 + tx) as isize, width)];
                        }
                    }
                }
            }
            model(&buffers.input, ih, iw, &mut buffers.output)?;
            for y in y0..y0 + tile_h {
                let src = &buffers.output[(y - iy0) * iw + (x0 - ix0)..][..tile_w];
                out[y * width + x0..][..tile_w].copy_from_slice(src);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5x5 mean with zero padding outside the given image: receptive-field radius 2.
    fn box5(input: &[f32], h: usize, w: usize, out: &mut [f32]) -> Result<(), String> {
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for dy in -2isize..=2 {
                    for dx in -2isize..=2 {
                        let (yy, xx) = (y as isize + dy, x as isize + dx);
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            s += input[yy as usize * w + xx as usize];
                        }
                    }
                }
                out[y * w + x] = s / 25.0;
            }
        }
        Ok(())
    }

    fn image(h: usize, w: usize) -> Vec<f32> {
        (0..h * w).map(|i| ((i * 7919) % 1013) as f32).collect()
    }

    type Model = fn(&[f32], usize, usize, &mut [f32]) -> Result<(), String>;

    /// The model run once on the whole image, and tiled.
    fn whole_and_tiled(h: usize, w: usize, tiling: Tiling, model: Model) -> (Vec<f32>, Vec<f32>) {
        let img = image(h, w);
        let mut whole = vec![0.0; h * w];
        model(&img, h, w, &mut whole).unwrap();
        let mut tiled = vec![0.0; h * w];
        run_tiled(
            &img,
            h,
            w,
            tiling,
            &mut TileBuffers::default(),
            &mut tiled,
            model,
        )
        .unwrap();
        (whole, tiled)
    }

    /// `box5` run tiled, and the window sizes it was given.
    fn box5_tiled(
        img: &[f32],
        h: usize,
        w: usize,
        tiling: Tiling,
    ) -> (Vec<f32>, Vec<(usize, usize)>) {
        let (mut tiled, mut sizes) = (vec![0.0; h * w], Vec::new());
        run_tiled(
            img,
            h,
            w,
            tiling,
            &mut TileBuffers::default(),
            &mut tiled,
            |i, th, tw, o| {
                sizes.push((th, tw));
                box5(i, th, tw, o)
            },
        )
        .unwrap();
        (tiled, sizes)
    }

    #[test]
    fn reflection_padding_indices() {
        let got: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn tiles_with_enough_halo_reproduce_the_untiled_result_exactly_inside() {
        let tiling = Tiling {
            tile: 16,
            halo: 2,
            multiple: 1,
            min_size: 1,
        };
        let (whole, tiled) = whole_and_tiled(45, 70, tiling, box5);
        assert_eq!(tiled, whole, "halo = receptive field: identical everywhere");
    }

    #[test]
    fn too_little_halo_shows_seams_which_proves_the_test_can_fail() {
        let tiling = Tiling {
            tile: 16,
            halo: 0,
            multiple: 1,
            min_size: 1,
        };
        let (whole, tiled) = whole_and_tiled(40, 40, tiling, box5);
        assert_ne!(tiled, whole);
    }

    #[test]
    fn size_multiples_pad_by_reflection_and_agree_away_from_the_frame_border() {
        let (h, w) = (37, 53);
        let img = image(h, w);
        let mut whole = vec![0.0; h * w];
        box5(&img, h, w, &mut whole).unwrap();
        let tiling = Tiling {
            tile: 16,
            halo: 4,
            multiple: 8,
            min_size: 8,
        };
        let (tiled, sizes) = box5_tiled(&img, h, w, tiling);
        assert!(
            sizes.iter().all(|(a, b)| a % 8 == 0 && b % 8 == 0),
            "{sizes:?}"
        );
        // Padding changes only what is within the receptive field of the frame border.
        for y in 2..h - 2 {
            for x in 2..w - 2 {
                assert_eq!(tiled[y * w + x], whole[y * w + x], "({y}, {x})");
            }
        }
    }

    /// Mean over 2x2 blocks of the window's own grid: like a pooling layer, the result depends
    /// on where the window starts.
    fn pool2(input: &[f32], h: usize, w: usize, out: &mut [f32]) -> Result<(), String> {
        for y in 0..h {
            for x in 0..w {
                let (by, bx) = (y / 2 * 2, x / 2 * 2);
                let s: f32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(dy, dx)| input[(by + dy).min(h - 1) * w + (bx + dx).min(w - 1)])
                    .sum();
                out[y * w + x] = s / 4.0;
            }
        }
        Ok(())
    }

    #[test]
    fn windows_start_on_the_model_grid_so_pooling_models_tile_exactly() {
        // Odd tile and frame sizes put naive window starts off the 2-pixel grid.
        let tiling = Tiling {
            tile: 13,
            halo: 3,
            multiple: 2,
            min_size: 2,
        };
        let (whole, tiled) = whole_and_tiled(42, 58, tiling, pool2);
        assert_eq!(tiled, whole);
    }

    #[test]
    fn windows_grow_to_the_model_minimum_size() {
        let tiling = Tiling {
            tile: 0,
            halo: 0,
            multiple: 8,
            min_size: 24,
        };
        assert_eq!(
            [1, 24, 25, 32, 33].map(|n| tiling.fit(n)),
            [24, 24, 32, 32, 40]
        );
        let (h, w) = (10, 30);
        let img = image(h, w);
        let mut whole = vec![0.0; h * w];
        box5(&img, h, w, &mut whole).unwrap();
        let (tiled, sizes) = box5_tiled(&img, h, w, tiling);
        assert_eq!(sizes, vec![(24, 32)]);
        for y in 2..h - 2 {
            for x in 2..w - 2 {
                assert_eq!(tiled[y * w + x], whole[y * w + x], "({y}, {x})");
            }
        }
    }

    #[test]
    fn model_errors_abort_the_frame() {
        let img = image(8, 8);
        let mut out = vec![0.0; 64];
        let tiling = Tiling {
            tile: 0,
            halo: 0,
            multiple: 1,
            min_size: 1,
        };
        let r = run_tiled(
            &img,
            8,
            8,
            tiling,
            &mut TileBuffers::default(),
            &mut out,
            |_, _, _, _| Err("boom"),
        );
        assert_eq!(r, Err("boom"));
    }
}
