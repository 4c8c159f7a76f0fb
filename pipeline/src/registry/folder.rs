//! A registry in a local folder: a version is written into a hidden
//! staging folder and renamed into place once every file is on disk, and
//! `registry.json` is replaced by a rename while `<task>/registry.lock` is
//! held, so it is never half-written and two promoters take turns.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use object_store::UpdateVersion;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    Lineage, Pointer, RegistryError, Replaced, Storage, Task, hidden_folder_in, io_error,
    parse_json, seal, version_number,
};
use crate::durable;

#[derive(Debug)]
pub(super) struct Folder {
    root: PathBuf,
    location: String,
}

impl Folder {
    pub(super) fn new(root: PathBuf) -> Self {
        Folder {
            location: root.display().to_string(),
            root,
        }
    }

    fn versions(&self, task: Task) -> PathBuf {
        self.root.join(task.as_str()).join("versions")
    }

    fn pointer_path(&self, task: Task) -> PathBuf {
        self.root.join(task.as_str()).join("registry.json")
    }

    /// Holds the task's pointer while it is compared and replaced;
    /// released when the file is dropped (or its process dies).
    fn lock(&self, task: Task) -> Result<fs::File, RegistryError> {
        let dir = self.root.join(task.as_str());
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join("registry.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        file.lock().map_err(io_error(&path))?;
        Ok(file)
    }

    /// The pointer file's text and a tag naming it (its hash).
    fn pointer_text(&self, task: Task) -> Result<Option<(String, UpdateVersion)>, RegistryError> {
        let path = self.pointer_path(task);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        let tag = UpdateVersion {
            e_tag: Some(format!("{:x}", Sha256::digest(text.as_bytes()))),
            version: None,
        };
        Ok(Some((text, tag)))
    }
}

impl Storage for Folder {
    fn location(&self) -> &str {
        &self.location
    }

    fn stage(&self, task: Task) -> Result<PathBuf, RegistryError> {
        hidden_folder_in(&self.versions(task), ".staging-")
    }

    fn commit(
        &self,
        task: Task,
        staged: &Path,
        lineage: &Lineage,
    ) -> Result<String, RegistryError> {
        let versions = self.versions(task);
        let last = self
            .version_ids(task)?
            .iter()
            .filter_map(|id| version_number(id))
            .max()
            .unwrap_or(0);
        let id = format!("v{}", last + 1);
        seal(staged, &id, lineage)?;
        let target = versions.join(&id);
        fs::rename(staged, &target).map_err(io_error(&target))?;
        sync_dir(&versions)?;
        Ok(id)
    }

    fn version_ids(&self, task: Task) -> Result<Vec<String>, RegistryError> {
        let versions = self.versions(task);
        if !versions.is_dir() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<(u64, String)> = fs::read_dir(&versions)
            .map_err(io_error(&versions))?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                Some((version_number(&name)?, name))
            })
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    fn has_version(&self, task: Task, id: &str) -> Result<bool, RegistryError> {
        Ok(self.versions(task).join(id).is_dir())
    }

    fn version_location(&self, task: Task, id: &str) -> String {
        let folder = self.versions(task).join(id);
        std::path::absolute(&folder)
            .unwrap_or(folder)
            .display()
            .to_string()
    }

    fn version_folder(&self, task: Task, id: &str) -> Result<PathBuf, RegistryError> {
        Ok(self.versions(task).join(id))
    }

    fn read_pointer(&self, task: Task) -> Result<(Pointer, Option<UpdateVersion>), RegistryError> {
        match self.pointer_text(task)? {
            None => Ok((Pointer::default(), None)),
            Some((text, tag)) => {
                let location = self.pointer_path(task).display().to_string();
                Ok((parse_json(&text, &location)?, Some(tag)))
            }
        }
    }

    fn replace_pointer(
        &self,
        task: Task,
        pointer: &Pointer,
        tag: Option<&UpdateVersion>,
    ) -> Result<Replaced, RegistryError> {
        let _lock = self.lock(task)?;
        let now = self.pointer_text(task)?.map(|(_, tag)| tag.e_tag);
        if now != tag.map(|tag| tag.e_tag.clone()) {
            return Ok(Replaced::Changed);
        }
        write_json(&self.pointer_path(task), pointer)?;
        Ok(Replaced::Done)
    }
}

/// Writes beside the target, flushes, then renames over it.
pub(super) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io_error(dir))?;
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    file.write_all(text.as_bytes()).map_err(io_error(path))?;
    file.as_file().sync_all().map_err(io_error(path))?;
    file.persist(path).map_err(|e| RegistryError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir)
}

/// Flushes every file under `dir`, and the folders themselves, to disk.
pub(super) fn sync_tree(dir: &Path) -> Result<(), RegistryError> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&path))?;
        }
    }
    sync_dir(dir)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    durable::sync_dir(dir).map_err(io_error(dir))
}
