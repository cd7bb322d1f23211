//! The `scopepilot` binary: config checking and start-up errors.

use std::process::Command;

fn scopepilot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scopepilot"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("scopepilot-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_shipped_and_embedded_configs_are_valid() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let (code, out, _) = scopepilot(&["check-config", shipped]);
    assert_eq!(code, 0);
    assert!(out.contains("ok"));
    let (code, out, _) = scopepilot(&["print-default-config"]);
    assert_eq!(code, 0);
    assert_eq!(out, std::fs::read_to_string(shipped).unwrap());
}

#[test]
fn invalid_configs_fail_with_the_key_and_a_non_zero_exit() {
    for (name, text, want) in [
        (
            "range",
            "[source.simulated]\nframe_rate_hz = -5.0\n",
            "source.simulated.frame_rate_hz",
        ),
        (
            "unknown",
            "[acquisition]\nring_capacitty = 3\n",
            "ring_capacitty",
        ),
        ("syntax", "[api\n", "TOML parse error"),
    ] {
        let path = temp_config(name, text);
        let (code, _, err) = scopepilot(&["check-config", path.to_str().unwrap()]);
        assert_ne!(code, 0, "{name}");
        assert!(err.contains(want), "{name}: {err}");
        let (code, _, err) = scopepilot(&["serve", "--config", path.to_str().unwrap()]);
        assert_ne!(code, 0, "serve must refuse {name}");
        assert!(err.contains(want), "{name}: {err}");
        let _ = std::fs::remove_file(path);
    }
    let (code, _, err) = scopepilot(&["check-config", "/nonexistent/scopepilot.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/scopepilot.toml"), "{err}");
}

#[test]
fn unknown_commands_print_usage() {
    let (code, _, err) = scopepilot(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("USAGE"));
    let (code, out, _) = scopepilot(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("scopepilot "));
}
