//! `ModelCatalog`: the models a daemon can offer. It lists the packages found in the
//! configured folders (`[models] search_paths`), resolves a model named by a client to a path,
//! and remembers what each loaded model reported (provider, self-test) for `ListModels`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{ModelPackage, ModelSummary};

/// One package found on disk.
#[derive(Debug, Clone)]
pub struct FoundPackage {
    /// Where it is.
    pub path: PathBuf,
    /// The package, or why it cannot be used.
    pub package: Result<ModelPackage, String>,
}

/// Packages in the search folders, and what loading them reported.
#[derive(Debug)]
pub struct ModelCatalog {
    search_paths: Vec<PathBuf>,
    loaded: Mutex<BTreeMap<PathBuf, ModelSummary>>,
}

/// A folder entry that looks like a model package: a folder, a description or an ONNX file.
fn looks_like_package(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".onnx")
        || name.ends_with(".bioimageio.yaml")
        || name == "rdf.yaml"
        || name == "bioimageio.yaml"
}

impl ModelCatalog {
    /// A catalog over `search_paths` (folders whose entries are packages).
    pub fn new(search_paths: Vec<PathBuf>) -> Self {
        Self {
            search_paths,
            loaded: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every package-like entry of the search folders, opened (not loaded), sorted by path.
    pub fn scan(&self) -> Vec<FoundPackage> {
        let mut found: Vec<FoundPackage> = self
            .search_paths
            .iter()
            .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| looks_like_package(p))
            .map(|path| FoundPackage {
                package: ModelPackage::open(&path).map_err(|e| e.to_string()),
                path,
            })
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }

    /// The path of `model`: an existing path, or the name (package name or folder name) of a
    /// package in the search folders.
    pub fn resolve(&self, model: &str) -> Result<PathBuf, String> {
        let as_path = crate::install::locate(Path::new(model));
        if as_path.exists() {
            return Ok(as_path);
        }
        let found = self.scan();
        found
            .iter()
            .find(|f| {
                f.path.file_name().is_some_and(|n| n == model)
                    || f.package.as_ref().is_ok_and(|p| p.name == model)
            })
            .map(|f| f.path.clone())
            .ok_or_else(|| {
                let names: Vec<String> = found
                    .iter()
                    .filter_map(|f| f.path.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                format!(
                    "no model {model:?}: not a path, and not a package in {} (found: {})",
                    self.search_paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )
            })
    }

    /// Remember what a loaded model reported.
    pub fn record(&self, summary: ModelSummary) {
        let key = std::fs::canonicalize(&summary.path).unwrap_or_else(|_| summary.path.clone());
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, summary);
    }

    /// What a loaded model at `path` reported, if it was loaded.
    pub fn loaded(&self, path: &Path) -> Option<ModelSummary> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    /// Paths of every model loaded so far, found in the search folders or not.
    pub fn loaded_paths(&self) -> Vec<PathBuf> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| s.path.clone())
            .collect()
    }

    /// Whether two paths name the same file or folder.
    pub fn same(a: &Path, b: &Path) -> bool {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_packages_and_resolves_names_and_reports_what_is_there() {
        let dir = std::env::temp_dir().join(format!("scopepilot-catalog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("good")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        std::fs::write(dir.join("good/net.onnx"), b"x").unwrap();
        std::fs::write(
            dir.join("good/model.toml"),
            "name = \"goodnet\"\nweights = \"net.onnx\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a model").unwrap();
        let catalog = ModelCatalog::new(vec![dir.clone()]);
        let found = catalog.scan();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .package
                .as_ref()
                .unwrap_err()
                .contains("no rdf.yaml")
        );
        assert_eq!(found[1].package.as_ref().unwrap().name, "goodnet");
        assert_eq!(catalog.resolve("goodnet").unwrap(), dir.join("good"));
        assert_eq!(catalog.resolve("good").unwrap(), dir.join("good"));
        let e = catalog.resolve("other").unwrap_err();
        assert!(e.contains("found: empty, good"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
