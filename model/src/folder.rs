//! A model folder: `config.json`, the weights, and `metrics.json` from
//! evaluation. What a student uploads and what training writes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        Self::read_from(&Files::Disk, path)
    }

    /// [`ModelConfig::read`] from `files`.
    pub fn read_from(files: &Files, path: &Path) -> Result<Self, LoadError> {
        let invalid = |reason: String| LoadError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(&files.read_text(path)?).map_err(|e| invalid(e.to_string()))?;
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
    /// Where its files are read from.
    pub files: Files,
}

/// A seekable source of a file's bytes.
pub trait ReadSeek: io::Read + io::Seek {}
impl<T: io::Read + io::Seek> ReadSeek for T {}

/// Where model files are read from: the disk, or files handed over whole
/// (a browser has no disk: the page fetches a folder's files and passes
/// them in). Paths are the same either way: a folder's path joined with
/// the file's name, so loaders name files as they do on disk.
#[derive(Clone, Debug, Default)]
pub enum Files {
    #[default]
    Disk,
    /// Files under `root`, by their path relative to it (`/`-separated).
    Memory {
        root: PathBuf,
        files: Arc<BTreeMap<String, Arc<[u8]>>>,
    },
}

impl Files {
    /// `files` (name, bytes) as if they were in a folder at `root`.
    pub fn in_memory(
        root: impl Into<PathBuf>,
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Self {
        Files::Memory {
            root: root.into(),
            files: Arc::new(
                files
                    .into_iter()
                    .map(|(name, bytes)| (name, Arc::from(bytes)))
                    .collect(),
            ),
        }
    }

    /// `path` as a name in memory, or `None` outside the root.
    fn name(root: &Path, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(root).ok()?;
        let parts: Vec<&str> = relative
            .components()
            .map(|part| part.as_os_str().to_str())
            .collect::<Option<_>>()?;
        Some(parts.join("/"))
    }

    fn missing(path: &Path) -> LoadError {
        LoadError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
        }
    }

    pub fn is_file(&self, path: &Path) -> bool {
        match self {
            Files::Disk => path.is_file(),
            Files::Memory { root, files } => {
                Self::name(root, path).is_some_and(|name| files.contains_key(&name))
            }
        }
    }

    /// A file's bytes.
    pub fn read(&self, path: &Path) -> Result<Cow<'_, [u8]>, LoadError> {
        match self {
            Files::Disk => fs::read(path)
                .map(Cow::Owned)
                .map_err(|source| LoadError::Io {
                    path: path.to_path_buf(),
                    source,
                }),
            Files::Memory { root, files } => Self::name(root, path)
                .and_then(|name| files.get(&name))
                .map(|bytes| Cow::Borrowed(&bytes[..]))
                .ok_or_else(|| Self::missing(path)),
        }
    }

    /// A text file, with its path in the error.
    pub fn read_text(&self, path: &Path) -> Result<String, LoadError> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes.into_owned()).map_err(|_| LoadError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"),
        })
    }

    /// A file to read a part at a time (a GGUF's tensors one by one).
    pub fn reader(&self, path: &Path) -> Result<Box<dyn ReadSeek + '_>, LoadError> {
        match self {
            Files::Disk => fs::File::open(path)
                .map(|file| Box::new(file) as Box<dyn ReadSeek>)
                .map_err(|source| LoadError::Io {
                    path: path.to_path_buf(),
                    source,
                }),
            Files::Memory { .. } => match self.read(path)? {
                Cow::Borrowed(bytes) => Ok(Box::new(io::Cursor::new(bytes))),
                Cow::Owned(bytes) => Ok(Box::new(io::Cursor::new(bytes))),
            },
        }
    }

    /// What a folder holds directly, files and sub-folders, sorted.
    pub fn entries(&self, folder: &Path) -> Result<Vec<PathBuf>, LoadError> {
        let mut entries: Vec<PathBuf> = match self {
            Files::Disk => fs::read_dir(folder)
                .map_err(|source| LoadError::Io {
                    path: folder.to_path_buf(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect(),
            Files::Memory { root, files } => {
                let Some(prefix) = Self::name(root, folder) else {
                    return Err(Self::missing(folder));
                };
                let prefix = if prefix.is_empty() {
                    prefix
                } else {
                    prefix + "/"
                };
                let mut children: Vec<PathBuf> = files
                    .keys()
                    .filter_map(|name| name.strip_prefix(&prefix))
                    .filter_map(|rest| rest.split('/').next())
                    .map(|child| folder.join(child))
                    .collect();
                children.dedup();
                if children.is_empty() {
                    return Err(Self::missing(folder));
                }
                children
            }
        };
        entries.sort();
        Ok(entries)
    }

    /// Whether `path` is a folder (on disk) or holds files (in memory).
    pub fn is_dir(&self, path: &Path) -> bool {
        match self {
            Files::Disk => path.is_dir(),
            Files::Memory { .. } => !self.is_file(path) && self.entries(path).is_ok(),
        }
    }
}

/// A text file of a model folder on disk, with its path in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    Files::Disk.read_text(path)
}

/// The top-level numbers of a folder's `metrics.json` (none without one):
/// what the Models page shows. Nested figures such as per-class metrics or
/// a confusion matrix stay in the file.
pub fn read_metrics(folder: &Path) -> Result<BTreeMap<String, f64>, LoadError> {
    metrics_in(&Files::Disk, folder)
}

pub(crate) fn metrics_in(files: &Files, folder: &Path) -> Result<BTreeMap<String, f64>, LoadError> {
    let path = folder.join("metrics.json");
    if !files.is_file(&path) {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(&files.read_text(&path)?).map_err(|e| LoadError::Config {
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
        Self::open_in(Files::Disk, path)
    }

    /// [`ModelFolder::open`] from `files`.
    pub fn open_in(files: Files, path: &Path) -> Result<Self, LoadError> {
        let config = ModelConfig::read_from(&files, &path.join("config.json"))?;
        let metrics = metrics_in(&files, path)?;
        Ok(ModelFolder {
            path: path.to_path_buf(),
            config,
            metrics,
            files,
        })
    }

    /// Whether the folder holds the file `name`.
    pub fn has(&self, name: &str) -> bool {
        self.files.is_file(&self.path.join(name))
    }

    /// The first file in the folder with this extension, by name.
    pub fn weights(&self, extension: &str) -> Result<PathBuf, LoadError> {
        Ok(self.files(extension)?.swap_remove(0))
    }

    /// Every file in the folder with this extension, by name (at least
    /// one): a model sharded as `model-00001-of-00002.safetensors`, ...
    pub fn files(&self, extension: &str) -> Result<Vec<PathBuf>, LoadError> {
        let mut found: Vec<PathBuf> = self
            .files
            .entries(&self.path)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == extension) && self.files.is_file(p))
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
    fn files_in_memory_read_as_a_folder_on_disk_does() {
        let files = Files::in_memory(
            "hf://ada/actors",
            [
                (
                    "config.json".to_string(),
                    br#"{"task": "face-embedding", "architecture": "x"}"#.to_vec(),
                ),
                ("gallery/Ada/1.jpg".to_string(), vec![1, 2]),
                ("gallery/Ada/2.jpg".to_string(), vec![3]),
                ("gallery/Bea/1.jpg".to_string(), vec![4]),
            ],
        );
        let root = Path::new("hf://ada/actors");
        let folder = ModelFolder::open_in(files.clone(), root).unwrap();
        assert_eq!(folder.config.task, ModelKind::FaceEmbedding);
        assert!(folder.has("config.json") && !folder.has("model.pth"));
        let gallery = root.join("gallery");
        assert!(files.is_dir(&gallery) && !files.is_file(&gallery));
        assert_eq!(
            files.entries(&gallery).unwrap(),
            [gallery.join("Ada"), gallery.join("Bea")]
        );
        assert_eq!(
            files.entries(&gallery.join("Ada")).unwrap(),
            [gallery.join("Ada/1.jpg"), gallery.join("Ada/2.jpg")]
        );
        assert_eq!(&*files.read(&gallery.join("Ada/1.jpg")).unwrap(), [1, 2]);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut files.reader(&gallery.join("Bea/1.jpg")).unwrap(),
            &mut bytes,
        )
        .unwrap();
        assert_eq!(bytes, [4]);
        for missing in [
            root.join("model.pth"),
            gallery.join("Cleo"),
            Path::new("/elsewhere/config.json").to_path_buf(),
        ] {
            assert!(!files.is_file(&missing), "{}", missing.display());
            assert!(matches!(files.read(&missing), Err(LoadError::Io { .. })));
        }
        let err = folder.weights("pth").unwrap_err();
        assert!(err.to_string().contains("no .pth file"), "{err}");
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
