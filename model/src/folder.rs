//! A model folder: `config.json`, the weights, and `metrics.json` from
//! evaluation. What a student uploads and what training writes.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::text::PromptStyle;
use crate::vision::Preprocess;
use crate::{Language, ModelInfo, ModelKind};

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid model config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("the model folder {folder} has no {expected} file")]
    MissingWeights { folder: PathBuf, expected: String },
    #[error(
        "{origin} names {found} labels but the model has {classes} classes: give one label per class, in class order"
    )]
    Labels {
        origin: String,
        found: usize,
        classes: usize,
    },
    #[error("could not fetch {location} from the Hugging Face Hub: {reason}")]
    Hub { location: String, reason: String },
    #[error("the weights in {path} can't be used: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("the weights in {path} can't be used: {source}")]
    Network {
        path: PathBuf,
        source: crate::vision::NetworkError,
    },
    #[error(
        "a {task} model of architecture '{architecture}' is not supported yet: use {supported}"
    )]
    Unsupported {
        task: &'static str,
        architecture: String,
        supported: &'static str,
    },
}

/// `config.json`, the model folder's manifest: what training, uploads and
/// the registry write and every loader reads.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ModelConfig {
    pub task: ModelKind,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the weights came from, for people (a package, a Hub repo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Text models: how to ask the model for a horoscope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptStyle>,
    /// Text models: the language it writes (English when not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Face galleries: the descriptor distance beyond which a face is "unknown".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Classifiers: the input transform, when not torchvision's ImageNet one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocess>,
    /// Everything else the file holds, kept as it is: the hyperparameters
    /// transformers reads beside ours in a fine-tuned Llama's config.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelConfig {
    /// A config with only a task and an architecture.
    pub fn new(task: ModelKind, architecture: impl Into<String>) -> Self {
        ModelConfig {
            task,
            architecture: architecture.into(),
            name: None,
            version: None,
            source: None,
            labels: Vec::new(),
            prompt: None,
            language: None,
            threshold: None,
            preprocess: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The file's text: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config is plain data") + "\n"
    }

    /// Writes the config to `path`.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        fs::write(path, self.to_json())
    }

    /// Reads and checks a `config.json`. A Hugging Face transformers
    /// config (no `task`, a `model_type`) is a text-generation model of
    /// that architecture, so a Hub checkpoint loads as it is.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let invalid = |reason: String| LoadError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(&read_text(path)?).map_err(|e| invalid(e.to_string()))?;
        if let Some(object) = value.as_object_mut()
            && !object.contains_key("task")
            && let Some(model_type) = object.get("model_type").cloned()
        {
            object.insert("task".into(), "text-generation".into());
            object.entry("architecture").or_insert(model_type);
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    }
}

/// An opened model folder.
#[derive(Clone, Debug)]
pub struct ModelFolder {
    pub path: PathBuf,
    pub config: ModelConfig,
    pub metrics: BTreeMap<String, f64>,
}

/// A text file of a model folder, with its path in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The top-level numbers of a folder's `metrics.json` (none without one):
/// what the Models page shows. Nested figures such as per-class metrics or
/// a confusion matrix stay in the file.
pub fn read_metrics(folder: &Path) -> Result<BTreeMap<String, f64>, LoadError> {
    let path = folder.join("metrics.json");
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(&read_text(&path)?).map_err(|e| LoadError::Config {
            path: path.clone(),
            reason: format!("metrics.json is not JSON ({e})"),
        })?;
    let object = value.as_object().ok_or_else(|| LoadError::Config {
        path: path.clone(),
        reason: "metrics.json must be a JSON object".into(),
    })?;
    Ok(object
        .iter()
        .filter_map(|(name, value)| value.as_f64().map(|v| (name.clone(), v)))
        .collect())
}

impl ModelFolder {
    /// Reads `config.json` and, when present, `metrics.json`.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let config_path = path.join("config.json");
        let config = ModelConfig::read(&config_path)?;
        let metrics = read_metrics(path)?;
        Ok(ModelFolder {
            path: path.to_path_buf(),
            config,
            metrics,
        })
    }

    /// The first file in the folder with this extension, by name.
    pub fn weights(&self, extension: &str) -> Result<PathBuf, LoadError> {
        Ok(self.files(extension)?.swap_remove(0))
    }

    /// Every file in the folder with this extension, by name (at least
    /// one): a model sharded as `model-00001-of-00002.safetensors`, ...
    pub fn files(&self, extension: &str) -> Result<Vec<PathBuf>, LoadError> {
        let entries = fs::read_dir(&self.path).map_err(|source| LoadError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == extension))
            .collect();
        if found.is_empty() {
            return Err(LoadError::MissingWeights {
                folder: self.path.clone(),
                expected: format!(".{extension}"),
            });
        }
        found.sort();
        Ok(found)
    }

    /// What the app shows about this model.
    pub fn info(&self) -> ModelInfo {
        let folder_name = self
            .path
            .file_name()
            .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
        ModelInfo {
            task: self.config.task,
            name: self.config.name.clone().unwrap_or(folder_name),
            version: self
                .config
                .version
                .clone()
                .unwrap_or_else(|| "local".into()),
            architecture: self.config.architecture.clone(),
            source: self
                .config
                .source
                .clone()
                .unwrap_or_else(|| self.path.display().to_string()),
            labels: self.config.labels.clone(),
            metrics: self.metrics.clone(),
            language: (self.config.task == ModelKind::TextGeneration)
                .then(|| self.config.language.unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_and_metrics_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("config.json"),
            r#"{"task": "text-generation", "architecture": "llama", "version": "v3", "prompt": "chat"}"#,
        )
        .unwrap();
        fs::write(
            dir.path().join("metrics.json"),
            r#"{"perplexity": 12.5, "confusion": [[1]]}"#,
        )
        .unwrap();
        let folder = ModelFolder::open(dir.path()).unwrap();
        let info = folder.info();
        assert_eq!(info.version, "v3");
        assert_eq!(info.metrics["perplexity"], 12.5);
        assert_eq!(info.metrics.len(), 1, "nested figures stay in the file");
        assert_eq!(folder.config.prompt, Some(PromptStyle::Chat));
        let err = folder.weights("gguf").unwrap_err();
        assert!(err.to_string().contains("no .gguf file"), "{err}");
    }

    #[test]
    fn a_config_round_trips_with_the_fields_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"task": "text-generation", "architecture": "llama", "model_type": "llama", "hidden_size": 576}"#,
        )
        .unwrap();
        let config = ModelConfig {
            version: Some("v2".into()),
            ..ModelConfig::read(&path).unwrap()
        };
        config.write(&path).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written["version"], "v2");
        assert_eq!(written["hidden_size"], 576, "{written}");
        assert_eq!(written["model_type"], "llama");
        assert!(
            written.get("labels").is_none(),
            "empty fields stay out: {written}"
        );
        let again = ModelConfig::read(&path).unwrap();
        assert_eq!(again.version.as_deref(), Some("v2"));
        assert_eq!(again.extra, config.extra);
    }

    #[test]
    fn a_broken_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), r#"{"task": "dancing"}"#).unwrap();
        let err = ModelFolder::open(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("config.json is not a valid model config"),
            "{err}"
        );
        let err = ModelFolder::open(&dir.path().join("nowhere")).unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }), "{err}");
    }
}
