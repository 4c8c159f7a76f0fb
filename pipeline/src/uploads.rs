//! Models an admin uploads: each into its own folder under
//! `<data>/models/uploads/`, written hidden and renamed into place, so a
//! failed or half-finished upload never looks like a model.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use starcast_model::ModelKind;

use crate::durable::{sync_dir, write_synced};
use starcast_model::folder::ModelConfig;

/// The weight formats an upload may be, by file extension.
pub const WEIGHT_EXTENSIONS: [&str; 4] = ["pth", "pt", "bin", "safetensors"];

/// What an admin sends.
#[derive(Clone, Debug)]
pub struct ModelUpload {
    /// The uploaded file's name, for its extension and the record.
    pub file_name: String,
    pub weights: Vec<u8>,
    /// Labels in class order; empty when the upload has none.
    pub labels: Vec<String>,
    /// The architecture, when the admin names it.
    pub architecture: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("'{0}' is not a weights file name: upload a .pth, .pt, .bin or .safetensors file")]
    BadFileName(String),
    #[error("the weights file is empty")]
    Empty,
    #[error("could not store the upload in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The folder uploads go to.
#[derive(Clone, Debug)]
pub struct ModelUploads {
    root: PathBuf,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl ModelUploads {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ModelUploads { root: root.into() }
    }

    /// Stores an upload as a model folder (`model.<ext>`, `labels.txt`,
    /// `config.json`) and returns its path.
    pub fn save(&self, upload: &ModelUpload) -> Result<PathBuf, UploadError> {
        let extension = Path::new(&upload.file_name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .filter(|e| WEIGHT_EXTENSIONS.contains(&e.as_str()))
            .ok_or_else(|| UploadError::BadFileName(upload.file_name.clone()))?;
        if upload.weights.is_empty() {
            return Err(UploadError::Empty);
        }
        let now = Utc::now();
        let version = format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let folder = self.root.join(&version);
        let hidden = self.root.join(format!(".{version}.partial"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| UploadError::Io { path, source }
        };
        fs::create_dir_all(&hidden).map_err(io(&hidden))?;
        let weights = hidden.join(format!("model.{extension}"));
        write_synced(&weights, &upload.weights).map_err(io(&weights))?;
        if !upload.labels.is_empty() {
            let labels = hidden.join("labels.txt");
            write_synced(&labels, (upload.labels.join("\n") + "\n").as_bytes())
                .map_err(io(&labels))?;
        }
        let architecture = upload.architecture.as_deref().unwrap_or("auto");
        let config = ModelConfig {
            name: Some("uploaded classifier".into()),
            version: Some(version),
            source: Some(format!(
                "uploaded {} at {}",
                upload.file_name,
                now.to_rfc3339()
            )),
            ..ModelConfig::new(ModelKind::ImageClassification, architecture)
        };
        let config_path = hidden.join("config.json");
        write_synced(&config_path, config.to_json().as_bytes()).map_err(io(&config_path))?;
        sync_dir(&hidden).map_err(io(&hidden))?;
        fs::rename(&hidden, &folder).map_err(io(&folder))?;
        sync_dir(&self.root).map_err(io(&self.root))?;
        Ok(folder)
    }

    /// Removes an upload that turned out not to be a usable model.
    pub fn discard(&self, folder: &Path) {
        if folder.starts_with(&self.root)
            && let Err(error) = fs::remove_dir_all(folder)
        {
            tracing::warn!(folder = %folder.display(), %error, "could not remove a rejected upload");
        }
    }
}

/// Labels as an admin types them: one per line or comma-separated.
pub fn parse_labels(text: &str) -> Vec<String> {
    let separator = if text.contains('\n') { '\n' } else { ',' };
    text.split(separator)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(file_name: &str) -> ModelUpload {
        ModelUpload {
            file_name: file_name.into(),
            weights: vec![1, 2, 3],
            labels: vec!["Ada".into(), "Bob".into()],
            architecture: None,
        }
    }

    #[test]
    fn an_upload_becomes_a_model_folder() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = ModelUploads::new(dir.path());
        let folder = uploads.save(&upload("Model.PTH")).unwrap();
        assert_eq!(fs::read(folder.join("model.pth")).unwrap(), vec![1, 2, 3]);
        assert_eq!(
            fs::read_to_string(folder.join("labels.txt")).unwrap(),
            "Ada\nBob\n"
        );
        let config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["architecture"], "auto");
        let second = uploads.save(&upload("model.safetensors")).unwrap();
        assert_ne!(folder, second);
        uploads.discard(&second);
        assert!(!second.exists());
    }

    #[test]
    fn names_and_empty_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = ModelUploads::new(dir.path());
        assert!(matches!(
            uploads.save(&upload("../evil.sh")),
            Err(UploadError::BadFileName(_))
        ));
        let mut empty = upload("model.pth");
        empty.weights.clear();
        assert!(matches!(uploads.save(&empty), Err(UploadError::Empty)));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn labels_by_line_or_comma() {
        assert_eq!(parse_labels("Ada, Bob ,,Cy"), vec!["Ada", "Bob", "Cy"]);
        assert_eq!(
            parse_labels("Ada Lovelace\nBob, Jr.\n"),
            vec!["Ada Lovelace", "Bob, Jr."]
        );
    }
}
