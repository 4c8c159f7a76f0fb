//! Publishing a model folder to the Hugging Face Hub through its HTTP API,
//! as `huggingface_hub.upload_folder` does: create the repo if needed, ask
//! which files go through LFS, upload those to the LFS store, then one
//! commit with the small files inline and the large ones by hash.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The Hub's public address; `HF_ENDPOINT` replaces it (a mirror, or a
/// server on loopback in tests).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("'{0}' is not a repo name: write it as user/name")]
    RepoName(String),
    #[error(
        "pushing to the Hub needs a write token: set HF_TOKEN (huggingface.co/settings/tokens)"
    )]
    NoToken,
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Hub refused {what}: {reason}")]
    Hub { what: &'static str, reason: String },
}

/// A file of the folder, read once.
struct Upload {
    path: String,
    bytes: Vec<u8>,
    sha256: String,
}

impl Upload {
    fn new(path: String, bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Upload {
            path,
            bytes,
            sha256,
        }
    }
}

/// Where to push, and as whom.
#[derive(Clone, Debug)]
pub struct HubRepo {
    pub endpoint: String,
    pub repo: String,
    pub token: String,
    pub private: bool,
}

impl HubRepo {
    pub fn new(
        endpoint: &str,
        repo: &str,
        token: Option<String>,
        private: bool,
    ) -> Result<Self, PushError> {
        let valid = repo.split('/').count() == 2 && repo.split('/').all(|part| !part.is_empty());
        if !valid {
            return Err(PushError::RepoName(repo.to_string()));
        }
        Ok(HubRepo {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            repo: repo.to_string(),
            token: token.filter(|t| !t.is_empty()).ok_or(PushError::NoToken)?,
            private,
        })
    }

    fn post(
        &self,
        what: &'static str,
        url: &str,
        content_type: &str,
        body: &str,
    ) -> Result<Value, PushError> {
        let response = ureq::post(url)
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Content-Type", content_type)
            .send_string(body);
        let refused = |reason: String| PushError::Hub { what, reason };
        match response {
            Ok(response) => {
                let text = response.into_string().map_err(|e| refused(e.to_string()))?;
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(code, response)) => {
                let body = response.into_string().unwrap_or_default();
                Err(refused(format!("status {code}: {body}")))
            }
            Err(e) => Err(refused(e.to_string())),
        }
    }

    /// Creates the model repo; one that exists already is fine.
    fn create(&self) -> Result<(), PushError> {
        let (namespace, name) = self.repo.split_once('/').expect("checked in new()");
        let body = json!({ "type": "model", "name": name, "organization": namespace, "private": self.private });
        match self.post(
            "creating the repo",
            &format!("{}/api/repos/create", self.endpoint),
            "application/json",
            &body.to_string(),
        ) {
            Err(PushError::Hub { reason, .. }) if reason.starts_with("status 409") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Which files the Hub wants through LFS.
    fn lfs_paths(&self, files: &[Upload]) -> Result<Vec<String>, PushError> {
        let listed: Vec<Value> = files
            .iter()
            .map(|f| {
                let sample = &f.bytes[..f.bytes.len().min(512)];
                json!({ "path": f.path, "size": f.bytes.len(), "sample": BASE64.encode(sample) })
            })
            .collect();
        let answer = self.post(
            "the pre-upload check",
            &format!("{}/api/models/{}/preupload/main", self.endpoint, self.repo),
            "application/json",
            &json!({ "files": listed }).to_string(),
        )?;
        Ok(answer["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["uploadMode"] == "lfs")
            .filter_map(|f| f["path"].as_str().map(String::from))
            .collect())
    }

    /// Uploads a file to the LFS store unless the Hub has its content already.
    fn upload_lfs(&self, file: &Upload) -> Result<(), PushError> {
        let batch = json!({
            "operation": "upload",
            "transfers": ["basic"],
            "hash_algo": "sha256",
            "objects": [{ "oid": file.sha256, "size": file.bytes.len() }],
        });
        let answer = self.post(
            "the LFS upload request",
            &format!("{}/{}.git/info/lfs/objects/batch", self.endpoint, self.repo),
            "application/vnd.git-lfs+json",
            &batch.to_string(),
        )?;
        let action = &answer["objects"][0]["actions"]["upload"];
        let Some(href) = action["href"].as_str() else {
            return Ok(());
        };
        let mut request = ureq::put(href);
        if let Some(headers) = action["header"].as_object() {
            for (name, value) in headers {
                request = request.set(name, value.as_str().unwrap_or_default());
            }
        }
        request
            .send_bytes(&file.bytes)
            .map_err(|e| PushError::Hub {
                what: "the LFS upload",
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Pushes every file of `folder` (not hidden, not in subfolders) in one
    /// commit, with `written`'s files in place of those of the same names
    /// or beside them, and returns the commit's URL.
    pub fn push_folder(
        &self,
        folder: &Path,
        summary: &str,
        written: &[(&str, Vec<u8>)],
    ) -> Result<String, PushError> {
        let mut files = read_folder(folder)?;
        for (name, bytes) in written {
            files.retain(|file| file.path != *name);
            files.push(Upload::new(name.to_string(), bytes.clone()));
        }
        self.create()?;
        let lfs = self.lfs_paths(&files)?;
        let mut lines =
            vec![json!({ "key": "header", "value": { "summary": summary, "description": "" } })];
        for file in &files {
            if lfs.contains(&file.path) {
                self.upload_lfs(file)?;
                lines.push(json!({ "key": "lfsFile", "value": {
                    "path": file.path, "algo": "sha256", "oid": file.sha256, "size": file.bytes.len(),
                }}));
            } else {
                lines.push(json!({ "key": "file", "value": {
                    "path": file.path, "encoding": "base64", "content": BASE64.encode(&file.bytes),
                }}));
            }
        }
        let body: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        let answer = self.post(
            "the commit",
            &format!("{}/api/models/{}/commit/main", self.endpoint, self.repo),
            "application/x-ndjson",
            &body,
        )?;
        Ok(answer["commitUrl"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("{}/{}", self.endpoint, self.repo)))
    }
}

fn read_folder(folder: &Path) -> Result<Vec<Upload>, PushError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PushError::Read { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(read_error(folder))? {
        let path = entry.map_err(read_error(folder))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.is_file() || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(read_error(&path))?;
        files.push(Upload::new(name, bytes));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
