//! Write frames of the simulated microscope to a multi-page 16-bit TIFF, e.g. to look at them
//! in Fiji/napari or to play them back with `source.replay`. Runs as fast as it can, with
//! `INTERVAL_MS` of specimen time between frames:
//!
//! ```text
//! cargo run --release --example simulate_stack -- stack.tif 100 [INTERVAL_MS]
//! ```

use scopepilot::source::simulated::random::{NormalTable, Rng};
use scopepilot::source::simulated::{Scene, SimulatedConfig};
use tiff::encoder::{TiffEncoder, colortype};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(count)) = (args.first(), args.get(1)) else {
        return Err("usage: simulate_stack OUT.tif FRAMES [INTERVAL_MS]".into());
    };
    let count: u64 = count.parse()?;
    let interval_s = args
        .get(2)
        .map(|s| s.parse::<f64>())
        .transpose()?
        .unwrap_or(500.0)
        / 1e3;
    let cfg = SimulatedConfig::default();
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let mut scene = Scene::new(w, h, cfg.scene, cfg.seed);
    let normals = NormalTable::new();
    let mut rng = Rng::new(cfg.seed);
    let (mut expected, mut counts) = (vec![0.0f32; w * h], vec![0u16; w * h]);
    let mut encoder = TiffEncoder::new(std::io::BufWriter::new(std::fs::File::create(path)?))?;
    for n in 0..count {
        if n > 0 {
            scene.step(interval_s, n);
        }
        scene.render(&mut expected);
        cfg.camera
            .expose(&expected, &normals, &mut rng, &mut counts);
        encoder.write_image::<colortype::Gray16>(w as u32, h as u32, &counts)?;
    }
    for d in scene.divisions() {
        println!(
            "division: frame {} at ({:.0}, {:.0})",
            d.frame_number, d.x, d.y
        );
    }
    Ok(())
}
