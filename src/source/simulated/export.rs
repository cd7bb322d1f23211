//! Offline export of a simulated movie with its exact ground truth: a multi-page 16-bit TIFF
//! and a JSON file of the divisions, for evaluating detectors outside the daemon
//! (`scopepilot simulate`). Frames are made without pacing, `interval` of scene time apart.

use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use tiff::encoder::{TiffEncoder, colortype};

use super::{FrameInterval, SimulatedConfig, SimulatedSource};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// Frames written.
    pub frames: usize,
    /// Divisions in the ground truth.
    pub divisions: usize,
}

/// Simulate `frames` frames `interval` apart with `config`, writing the TIFF stack to `tiff`
/// and the ground truth (every division: frame, time, position) to `truth` as JSON.
pub fn export_movie(
    config: &SimulatedConfig,
    frames: usize,
    interval: Duration,
    tiff: &Path,
    truth: &Path,
) -> Result<ExportSummary, String> {
    if frames == 0 {
        return Err("frames must be at least 1".into());
    }
    if interval.is_zero() {
        return Err("the frame interval must be > 0".into());
    }
    let mut source = SimulatedSource::new(config.clone(), FrameInterval::new(interval))
        .map_err(|e| e.to_string())?;
    let file = std::fs::File::create(tiff)
        .map_err(|e| format!("cannot create {}: {e}", tiff.display()))?;
    let mut encoder = TiffEncoder::new(BufWriter::new(file))
        .map_err(|e| format!("cannot write {}: {e}", tiff.display()))?;
    let (w, h) = (config.width, config.height);
    let mut pixels = vec![0u16; w as usize * h as usize];
    for _ in 0..frames {
        source.next_frame_unpaced(interval, &mut pixels);
        encoder
            .write_image::<colortype::Gray16>(w, h, &pixels)
            .map_err(|e| format!("cannot write {}: {e}", tiff.display()))?;
    }
    let divisions: Vec<serde_json::Value> = source
        .divisions()
        .iter()
        .map(|d| {
            serde_json::json!({
                "frame": d.frame_number,
                "time_s": d.time_s,
                "x": d.x,
                "y": d.y,
                "mitosis_start_s": d.mitosis_start_s,
                "mother": d.mother,
                "daughters": d.daughters,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "source": "scopepilot simulated camera",
        "width": w,
        "height": h,
        "frames": frames,
        "interval_s": interval.as_secs_f64(),
        "seed": config.seed,
        "event": "division: first frame that shows the two daughters; x, y = their midpoint",
        "divisions": divisions,
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
    std::fs::write(truth, text).map_err(|e| format!("cannot write {}: {e}", truth.display()))?;
    Ok(ExportSummary {
        frames,
        divisions: divisions.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::replay::TiffStack;

    #[test]
    fn exported_movie_reads_back_with_its_divisions() {
        let dir = std::env::temp_dir().join(format!("sp-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = SimulatedConfig {
            width: 96,
            height: 64,
            ..SimulatedConfig::default()
        };
        config.scene.initial_nuclei = 6;
        config.scene.division_interval_s = 2.0;
        config.scene.mitosis_duration_s = 1.0;
        let (tif, json) = (dir.join("m.tif"), dir.join("m.json"));
        let s = export_movie(&config, 12, Duration::from_millis(500), &tif, &json).unwrap();
        let stack = TiffStack::open(&tif, 1 << 30).unwrap();
        assert_eq!(
            (stack.len(), stack.spec().width, stack.spec().height),
            (12, 96, 64)
        );
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let divisions = truth["divisions"].as_array().unwrap();
        assert_eq!(divisions.len(), s.divisions);
        assert!(s.divisions > 0, "2 s cycles over 6 s must divide");
        assert!(divisions.iter().all(|d| d["frame"].as_u64().unwrap() < 12));
        assert!(export_movie(&config, 0, Duration::from_millis(1), &tif, &json).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
