//! bioimage.io model packages (format 0.5 and 0.4) load through ONNX Runtime and pass their
//! self-test: the package's test input, run through its preprocessing, the model and its
//! postprocessing, must reproduce the package's test output. The test packages in
//! tests/data/bioimageio/ are made by scripts/make_test_models.py, whose expected outputs come
//! from numpy (and were checked with the reference implementation, bioimageio.core).
//! Broken packages are refused with a message that says what is wrong.

use std::path::{Path, PathBuf};

use scopepilot::inference::{InferenceConfig, LoadedModel};

fn package(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bioimageio")
        .join(name)
}

fn open(dir: &Path) -> Result<LoadedModel, String> {
    LoadedModel::open(dir, 0, &InferenceConfig::default()).map_err(|e| e.to_string())
}

/// A scratch copy of a test package, edited by `edit`.
struct Scratch(PathBuf);

impl Scratch {
    fn of(name: &str, case: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "scopepilot-pkg-{}-{name}-{case}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(package(name)).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
        Self(dir)
    }

    fn edit_rdf(&self, from: &str, to: &str) -> &Self {
        let path = self.0.join("rdf.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} not in {}", path.display());
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_test_package_loads_and_passes_its_self_test() {
    for (name, format, pre) in [
        ("norm-box3-v05", "bioimage.io 0.5.4", "scale_range(1, 99.8)"),
        (
            "zmuv-box3-v04",
            "bioimage.io 0.4.10",
            "zero_mean_unit_variance",
        ),
        ("plain-v05", "bioimage.io 0.5.4", "ensure_dtype(float32)"),
    ] {
        let model = open(&package(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = model.summary();
        assert_eq!(s.format, format);
        assert!(s.preprocessing.iter().any(|p| p == pre), "{name}: {s:?}");
        let report = s
            .self_test
            .unwrap_or_else(|| panic!("{name} has test tensors"));
        assert_eq!(report.size, (48, 64));
        assert_eq!(report.mismatched, 0, "{name}: {report:?}");
        assert_eq!(s.halo, 1);
    }
}

#[test]
fn the_self_test_catches_wrong_processing_and_wrong_expectations() {
    // Another percentile changes the normalisation: the test output is no longer reproduced.
    let pkg = Scratch::of("norm-box3-v05", "percentile");
    pkg.edit_rdf("max_percentile: 99.8", "max_percentile: 99.0");
    let e = open(&pkg.0).unwrap_err();
    assert!(
        e.contains("self-test failed") && e.contains("test_output.npy"),
        "{e}"
    );
    // Postprocessing counts too: without the rescaling to the input's mean and std, the
    // output is not reproduced.
    let pkg = Scratch::of("zmuv-box3-v04", "nopost");
    pkg.edit_rdf(
        "postprocessing:",
        "postprocessing: []\n    unused_postprocessing:",
    );
    let e = open(&pkg.0).unwrap_err();
    assert!(e.contains("self-test failed"), "{e}");
    // An expected output that the model does not produce.
    let pkg = Scratch::of("plain-v05", "expect");
    std::fs::copy(pkg.0.join("test_input.npy"), pkg.0.join("test_output.npy")).unwrap();
    let e = open(&pkg.0).unwrap_err();
    assert!(e.contains("self-test failed"), "{e}");
}

/// A change that breaks a package copy.
type Edit = Box<dyn Fn(&Scratch)>;

#[test]
fn broken_packages_are_refused_with_the_reason() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "non-onnx weights",
            Box::new(|p| {
                p.edit_rdf("  onnx:\n", "  pytorch_state_dict:\n");
            }),
            "no ONNX weights (this package has: pytorch_state_dict)",
        ),
        (
            "corrupt bytes",
            Box::new(|p| {
                let f = p.0.join("model.onnx");
                let mut b = std::fs::read(&f).unwrap();
                let n = b.len() / 2;
                b[n] ^= 0xff;
                std::fs::write(f, b).unwrap();
            }),
            "SHA-256",
        ),
        (
            "truncated, no checksum",
            Box::new(|p| {
                let f = p.0.join("model.onnx");
                let b = std::fs::read(&f).unwrap();
                std::fs::write(f, &b[..b.len() / 2]).unwrap();
                let rdf = std::fs::read_to_string(p.0.join("rdf.yaml")).unwrap();
                let kept: Vec<&str> = rdf
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("sha256:"))
                    .collect();
                std::fs::write(p.0.join("rdf.yaml"), kept.join("\n")).unwrap();
            }),
            "not a loadable ONNX model",
        ),
        (
            "missing weights",
            Box::new(|p| std::fs::remove_file(p.0.join("model.onnx")).unwrap()),
            "not found",
        ),
        (
            "three channels",
            Box::new(|p| {
                p.edit_rdf("channel_names: [image]", "channel_names: [r, g, b]");
            }),
            // The description no longer matches the graph (one channel).
            "the package says 3",
        ),
        (
            "names that are not in the graph",
            Box::new(|p| {
                p.edit_rdf("  - id: smoothed", "  - id: denoised");
            }),
            "the graph has no output \"denoised\"",
        ),
        (
            "corrupt test tensor",
            Box::new(|p| std::fs::write(p.0.join("test_input.npy"), b"junk").unwrap()),
            "bad magic",
        ),
        (
            "unknown format",
            Box::new(|p| {
                p.edit_rdf("format_version: 0.5.4", "format_version: 0.3.6");
            }),
            "format_version \"0.3.6\" is not supported",
        ),
        (
            "not YAML",
            Box::new(|p| std::fs::write(p.0.join("rdf.yaml"), "inputs: [unclosed").unwrap()),
            "invalid description",
        ),
        (
            "unknown processing",
            Box::new(|p| {
                p.edit_rdf("- id: ensure_dtype", "- id: stretch_histogram");
            }),
            "unknown processing step \"stretch_histogram\"",
        ),
    ];
    for (case, edit, want) in cases {
        let pkg = Scratch::of("plain-v05", &case.replace([' ', ','], "-"));
        edit(&pkg);
        let e = open(&pkg.0).map(|_| ()).unwrap_err();
        assert!(e.contains(want), "{case}: {e}");
    }
    let e = LoadedModel::open(&package("plain-v05"), 1, &InferenceConfig::default()).unwrap_err();
    assert!(e.to_string().contains("tile 1 is too small"), "{e}");
    // Nothing above poisoned the runtime.
    assert!(open(&package("plain-v05")).is_ok());
}

#[test]
fn a_model_runs_frames_of_sizes_other_than_its_test_tensor() {
    // 37 x 53 is not min + k * step: the tiler pads by reflection and crops.
    let mut model = open(&package("plain-v05")).unwrap();
    let (h, w) = (37usize, 53usize);
    let img: Vec<f32> = (0..h * w).map(|i| ((i * 31) % 97) as f32).collect();
    let mut out = vec![0.0f32; h * w];
    model.process(&img, h, w, &mut out).unwrap();
    // Inside, a 3x3 mean; check a few pixels directly.
    for (y, x) in [(1usize, 1usize), (18, 26), (35, 51)] {
        let mut s = 0.0;
        for dy in 0..3 {
            for dx in 0..3 {
                s += img[(y + dy - 1) * w + x + dx - 1];
            }
        }
        assert!((out[y * w + x] - s / 9.0).abs() < 1e-3, "({y}, {x})");
    }
}
