//! Where scopepilot finds the files it ships with (the ONNX Runtime venv, `models/`): relative
//! paths are looked up in the working directory first, then in the folders above the
//! executable, so that `target/release/scopepilot` started from anywhere finds the checkout it
//! was built in.

use std::path::{Path, PathBuf};

/// The working directory, then every ancestor of the executable's folder.
pub fn search_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
}

/// `path` itself when absolute or present; else the first root that holds it; else `path`
/// unchanged (so that errors name what the user wrote).
pub fn locate(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    search_roots()
        .into_iter()
        .map(|root| root.join(path))
        .find(|p| p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_and_absolute_paths_are_kept_and_missing_ones_unchanged() {
        assert_eq!(
            locate(Path::new("/nonexistent/x")),
            PathBuf::from("/nonexistent/x")
        );
        assert_eq!(locate(Path::new("Cargo.toml")), PathBuf::from("Cargo.toml"));
        assert_eq!(
            locate(Path::new("no/such/model.onnx")),
            PathBuf::from("no/such/model.onnx")
        );
        assert_eq!(search_roots()[0], std::env::current_dir().unwrap());
    }
}
