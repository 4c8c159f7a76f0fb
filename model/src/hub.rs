//! Models on the Hugging Face Hub: `hf://user/repo[@revision]` becomes a
//! local model folder in the Hub cache (`HF_HOME`), fetched through hf-hub
//! with `HF_TOKEN` for private repos and `HF_ENDPOINT` for a mirror.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

use crate::folder::LoadError;

/// The scheme of a Hub model location.
pub const SCHEME: &str = "hf://";

/// File names a model folder can use; anything else in a repo (READMEs,
/// other frameworks' weights, images) is not downloaded.
fn wanted(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let extension = Path::new(&lower)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    lower.starts_with("gallery/")
        || matches!(
            lower.as_str(),
            "config.json"
                | "labels.txt"
                | "metrics.json"
                | "tokenizer.json"
                | "adapter_config.json"
        )
        || lower.ends_with("-weights_manifest.json")
        || matches!(extension, "safetensors" | "pth" | "pt" | "bin" | "gguf")
}

/// A Hub location, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct HubModel {
    pub repo: String,
    pub revision: String,
}

impl HubModel {
    /// `hf://user/repo` or `hf://user/repo@revision`; `None` for a local path.
    pub fn parse(location: &str) -> Option<Result<Self, LoadError>> {
        let rest = location.strip_prefix(SCHEME)?;
        let (repo, revision) = rest.split_once('@').unwrap_or((rest, "main"));
        let valid = repo.split('/').count() == 2
            && repo.split('/').all(|part| {
                !part.is_empty()
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
            && !revision.is_empty();
        Some(if valid {
            Ok(HubModel {
                repo: repo.into(),
                revision: revision.into(),
            })
        } else {
            Err(LoadError::Hub {
                location: location.into(),
                reason: "write it as hf://user/repo or hf://user/repo@revision".into(),
            })
        })
    }

    /// Downloads the repo's model files (or finds them in the cache) and
    /// returns the snapshot folder that holds them.
    pub fn fetch(&self) -> Result<PathBuf, LoadError> {
        let location = format!("{SCHEME}{}@{}", self.repo, self.revision);
        let failed = |reason: String| LoadError::Hub {
            location: location.clone(),
            reason,
        };
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
        let mut builder = ApiBuilder::from_env()
            .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        if token.is_some() {
            builder = builder.with_token(token);
        }
        let api = builder.build().map_err(|e| failed(e.to_string()))?;
        let repo = api.repo(Repo::with_revision(
            self.repo.clone(),
            RepoType::Model,
            self.revision.clone(),
        ));
        let info = repo.info().map_err(|e| {
            failed(format!(
                "{e}: check the repo name, set HF_TOKEN for a private repo, and check the network"
            ))
        })?;
        let files: Vec<&str> = info
            .siblings
            .iter()
            .map(|s| s.rfilename.as_str())
            .filter(|name| wanted(name) && !name.split('/').any(|part| part == ".."))
            .collect();
        if files.is_empty() {
            return Err(failed(
                "the repo has no model files (config.json, weights)".into(),
            ));
        }
        let mut folder = None;
        for file in files {
            let path = repo.get(file).map_err(|e| failed(format!("{file}: {e}")))?;
            let depth = file.split('/').count();
            let root = path.ancestors().nth(depth).map(Path::to_path_buf);
            folder = folder.or(root);
        }
        folder.ok_or_else(|| failed("the download left no folder".into()))
    }
}

/// A local path stays as it is; `hf://...` is fetched into the cache.
pub fn local_model(location: &Path) -> Result<PathBuf, LoadError> {
    match location.to_str().and_then(HubModel::parse) {
        Some(hub) => hub?.fetch(),
        None => Ok(location.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            HubModel::parse("hf://ada/actors@v2").unwrap().unwrap(),
            HubModel {
                repo: "ada/actors".into(),
                revision: "v2".into()
            }
        );
        assert_eq!(
            HubModel::parse("hf://ada/actors")
                .unwrap()
                .unwrap()
                .revision,
            "main"
        );
        assert!(HubModel::parse("data/models/x").is_none());
        for bad in [
            "hf://ada",
            "hf://ada/../etc",
            "hf://a/b/c",
            "hf://ada/x@",
            "hf://a b/c",
        ] {
            assert!(HubModel::parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_model_files_are_fetched() {
        for name in [
            "config.json",
            "model.safetensors",
            "model.pth",
            "labels.txt",
            "gallery/Ada/1.jpg",
            "face_recognition_model-weights_manifest.json",
            "model.gguf",
        ] {
            assert!(wanted(name), "{name}");
        }
        for name in [
            "README.md",
            "tf_model.h5",
            ".gitattributes",
            "flax_model.msgpack",
        ] {
            assert!(!wanted(name), "{name}");
        }
    }
}
