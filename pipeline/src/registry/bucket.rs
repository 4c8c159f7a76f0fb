//! A registry under a prefix of an object store (S3, or anything
//! object_store speaks), shared by every server and training machine:
//!
//! ```text
//! <prefix>/<task>/versions/v3/.claim          taken first, with a create-only put
//! <prefix>/<task>/versions/v3/<files>         then every file of the model folder
//! <prefix>/<task>/versions/v3/version.json    last: the file list; v3 exists from now on
//! <prefix>/<task>/registry.json               the pointer, replaced with If-Match
//! ```
//!
//! A writer killed mid-upload leaves a claim and some files but no
//! `version.json`, so the version is never listed and can't be promoted.
//! Each machine keeps a local copy of the versions it reads in its cache
//! folder, with their manifest: a copy whose manifest no longer
//! matches the bucket's (a bucket emptied and filled anew) is fetched again.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::{
    Lineage, Pointer, RegistryError, Replaced, Storage, Task, hidden_folder_in, io_error,
    parse_json, seal, version_number,
};
use crate::store;

const CLAIM: &str = ".claim";
const MANIFEST: &str = "version.json";
const POINTER: &str = "registry.json";
/// The manifest as kept in a local copy (hidden, so a Hub push skips it).
const COPIED_MANIFEST: &str = ".version.json";

/// What `version.json` records: the files a complete version has.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// When and by which process it was written: no two uploads share it.
    written: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestFile {
    /// The path inside the version, `/`-separated.
    name: String,
    bytes: u64,
}

#[derive(Debug)]
pub(super) struct Bucket {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    cache: PathBuf,
}

impl Bucket {
    /// A registry under `prefix` in `store`, with local copies under `cache`.
    pub(super) fn new(
        url: String,
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        cache: PathBuf,
    ) -> Self {
        Bucket {
            url,
            store,
            prefix,
            cache,
        }
    }

    /// The object at `parts` under the task's folder.
    fn object(&self, task: Task, parts: &[&str]) -> ObjectPath {
        self.prefix
            .parts()
            .chain(std::iter::once(PathPart::from(task.as_str())))
            .chain(
                parts
                    .iter()
                    .flat_map(|part| part.split('/'))
                    .map(PathPart::from),
            )
            .collect()
    }

    fn remote(&self, error: impl ToString) -> RegistryError {
        store::remote(&self.url, error).into()
    }

    /// Every object under the task's `versions/`, as (id, name in the version).
    async fn version_objects(&self, task: Task) -> Result<Vec<(String, String)>, RegistryError> {
        let versions = self.object(task, &["versions"]);
        let listed: Vec<_> = self
            .store
            .list(Some(&versions))
            .try_collect()
            .await
            .map_err(|e| self.remote(e))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let mut parts = meta.location.prefix_match(&versions)?;
                let id = parts.next()?.as_ref().to_string();
                let name: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
                Some((id, name.join("/")))
            })
            .collect())
    }

    /// The first version number no writer has claimed, claimed.
    async fn claim(&self, task: Task) -> Result<String, RegistryError> {
        let taken = self
            .version_objects(task)
            .await?
            .iter()
            .filter_map(|(id, _)| version_number(id))
            .max()
            .unwrap_or(0);
        let create = PutOptions::from(PutMode::Create);
        for number in taken + 1.. {
            let id = format!("v{number}");
            let claim = self.object(task, &["versions", &id, CLAIM]);
            match self
                .store
                .put_opts(&claim, PutPayload::new(), create.clone())
                .await
            {
                Ok(_) => return Ok(id),
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(error) => return Err(self.remote(error)),
            }
        }
        unreachable!("version numbers run out after u64::MAX")
    }

    /// Uploads the sealed folder as version `id`, the manifest last, and
    /// returns the manifest.
    async fn upload(&self, task: Task, id: &str, staged: &Path) -> Result<Vec<u8>, RegistryError> {
        let mut files = Vec::new();
        for relative in files_under(staged)? {
            let local = staged.join(&relative);
            let bytes = fs::metadata(&local).map_err(io_error(&local))?.len();
            let object = self.object(task, &["versions", id, &relative]);
            store::upload(&local, &self.store, &object, &self.url).await?;
            files.push(ManifestFile {
                name: relative,
                bytes,
            });
        }
        let written = format!(
            "{} by process {}",
            Utc::now().to_rfc3339(),
            std::process::id()
        );
        let manifest = serde_json::to_vec_pretty(&Manifest { written, files }).expect("plain data");
        let object = self.object(task, &["versions", id, MANIFEST]);
        self.store
            .put_opts(&object, manifest.clone().into(), PutMode::Create.into())
            .await
            .map_err(|e| self.remote(e))?;
        Ok(manifest)
    }

    /// Downloads version `id`, whose manifest is `text`, into `into`.
    async fn download(
        &self,
        task: Task,
        id: &str,
        text: &str,
        into: &Path,
    ) -> Result<(), RegistryError> {
        let object = self.object(task, &["versions", id, MANIFEST]);
        let manifest: Manifest = parse_json(text, &self.describe(&object))?;
        for file in manifest.files {
            let target = file
                .name
                .split('/')
                .fold(into.to_path_buf(), |path, part| path.join(part));
            let object = self.object(task, &["versions", id, &file.name]);
            store::download(&self.store, &object, &target, &self.url).await?;
            let bytes = fs::metadata(&target).map_err(io_error(&target))?.len();
            if bytes != file.bytes {
                return Err(RegistryError::Damaged {
                    location: self.describe(&object),
                    reason: format!("{bytes} bytes where version.json says {}", file.bytes),
                });
            }
        }
        let local = into.join(COPIED_MANIFEST);
        fs::write(&local, text).map_err(io_error(&local))
    }

    async fn get_text(&self, object: &ObjectPath) -> Result<String, RegistryError> {
        let got = self.store.get(object).await.map_err(|e| self.remote(e))?;
        let bytes = got.bytes().await.map_err(|e| self.remote(e))?;
        String::from_utf8(bytes.to_vec()).map_err(|e| RegistryError::Damaged {
            location: self.describe(object),
            reason: e.to_string(),
        })
    }

    /// An object's full address, for messages.
    fn describe(&self, object: &ObjectPath) -> String {
        let relative: Vec<String> = object
            .prefix_match(&self.prefix)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default();
        format!("{}/{}", self.url.trim_end_matches('/'), relative.join("/"))
    }
}

impl Storage for Bucket {
    fn location(&self) -> &str {
        &self.url
    }

    fn stage(&self, task: Task) -> Result<PathBuf, RegistryError> {
        hidden_folder_in(&self.cache.join(task.as_str()), ".staging-")
    }

    fn commit(
        &self,
        task: Task,
        staged: &Path,
        lineage: &Lineage,
    ) -> Result<String, RegistryError> {
        let id = store::block_on(self.claim(task))?;
        seal(staged, &id, lineage)?;
        let manifest = store::block_on(self.upload(task, &id, staged))?;
        // The staged folder is the version's local copy from now on.
        let local = staged.join(COPIED_MANIFEST);
        fs::write(&local, manifest).map_err(io_error(&local))?;
        let copy = self.cache.join(task.as_str()).join(&id);
        if copy.exists() {
            fs::remove_dir_all(&copy).map_err(io_error(&copy))?;
        }
        fs::rename(staged, &copy).map_err(io_error(&copy))?;
        Ok(id)
    }

    fn version_ids(&self, task: Task) -> Result<Vec<String>, RegistryError> {
        let objects = store::block_on(self.version_objects(task))?;
        let mut ids: Vec<(u64, String)> = objects
            .into_iter()
            .filter(|(_, name)| name == MANIFEST)
            .filter_map(|(id, _)| Some((version_number(&id)?, id)))
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    fn has_version(&self, task: Task, id: &str) -> Result<bool, RegistryError> {
        let manifest = self.object(task, &["versions", id, MANIFEST]);
        match store::block_on(self.store.head(&manifest)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(self.remote(error)),
        }
    }

    fn version_location(&self, task: Task, id: &str) -> String {
        self.describe(&self.object(task, &["versions", id]))
    }

    fn version_folder(&self, task: Task, id: &str) -> Result<PathBuf, RegistryError> {
        let folder = self.cache.join(task.as_str());
        let copy = folder.join(id);
        let manifest = self.object(task, &["versions", id, MANIFEST]);
        let text = store::block_on(self.get_text(&manifest))?;
        let copied = |copy: &Path| fs::read_to_string(copy.join(COPIED_MANIFEST)).ok();
        if copied(&copy).as_deref() == Some(text.as_str()) {
            return Ok(copy);
        }
        fs::create_dir_all(&folder).map_err(io_error(&folder))?;
        // Removed when dropped, unless renamed into place.
        let fetching = tempfile::Builder::new()
            .prefix(".fetching-")
            .tempdir_in(&folder)
            .map_err(io_error(&folder))?;
        store::block_on(self.download(task, id, &text, fetching.path()))?;
        if copy.exists() {
            fs::remove_dir_all(&copy).map_err(io_error(&copy))?;
        }
        // Another process may have fetched it meanwhile: either copy is whole.
        if let Err(error) = fs::rename(fetching.path(), &copy)
            && copied(&copy).as_deref() != Some(text.as_str())
        {
            return Err(io_error(&copy)(error));
        }
        Ok(copy)
    }

    fn read_pointer(&self, task: Task) -> Result<(Pointer, Option<UpdateVersion>), RegistryError> {
        let object = self.object(task, &[POINTER]);
        store::block_on(async {
            let got = match self.store.get(&object).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok((Pointer::default(), None)),
                Err(error) => return Err(self.remote(error)),
            };
            let tag = UpdateVersion {
                e_tag: got.meta.e_tag.clone(),
                version: got.meta.version.clone(),
            };
            let bytes = got.bytes().await.map_err(|e| self.remote(e))?;
            let pointer = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Damaged {
                location: self.describe(&object),
                reason: e.to_string(),
            })?;
            Ok((pointer, Some(tag)))
        })
    }

    fn replace_pointer(
        &self,
        task: Task,
        pointer: &Pointer,
        tag: Option<&UpdateVersion>,
    ) -> Result<Replaced, RegistryError> {
        let object = self.object(task, &[POINTER]);
        let mode = match tag {
            Some(tag) => PutMode::Update(tag.clone()),
            None => PutMode::Create,
        };
        let text = serde_json::to_vec_pretty(pointer).expect("plain data serialises");
        match store::block_on(self.store.put_opts(&object, text.into(), mode.into())) {
            Ok(_) => Ok(Replaced::Done),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Replaced::Changed),
            Err(error) => Err(self.remote(error)),
        }
    }
}

/// Every file under `dir`, as `/`-separated paths relative to it, sorted.
fn files_under(dir: &Path) -> Result<Vec<String>, RegistryError> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).map_err(io_error(&folder))? {
            let path = entry.map_err(io_error(&folder))?.path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                files.push(parts.join("/"));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Where local copies of the versions under `url` are kept by default.
pub(super) fn default_cache(url: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let name: String = url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    base.join("starcast").join("registry").join(name)
}
