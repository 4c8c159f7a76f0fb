//! Where pipeline data lives: a local path by default (or `file://`), any
//! `s3://bucket/prefix` through object_store with the usual AWS variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and
//! `AWS_ENDPOINT` + `AWS_ALLOW_HTTP` for an S3-compatible server), or
//! `memory://` (one process's memory, for tests and trials).
//!
//! Steps work on local files; a remote input is streamed down to a
//! temporary folder and a remote output streamed up when the step is done,
//! so memory stays bounded whatever the size.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::memory::InMemory;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, ObjectStoreScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::durable;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "'{0}' is not a storage location: use a local path, file://path, s3://bucket/prefix or memory://"
    )]
    BadLocation(String),
    #[error("{location}: {reason}")]
    Remote { location: String, reason: String },
    #[error("{path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A parsed storage location.
#[derive(Clone, Debug)]
pub enum Location {
    Local(PathBuf),
    Remote {
        url: String,
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

impl Location {
    /// A local path, or `s3://bucket/prefix`.
    pub fn parse(location: &str) -> Result<Self, StoreError> {
        if !location.contains("://") {
            return Ok(Location::Local(PathBuf::from(location)));
        }
        let bad = || StoreError::BadLocation(location.to_string());
        let url = url::Url::parse(location).map_err(|_| bad())?;
        let (scheme, prefix) = ObjectStoreScheme::parse(&url).map_err(|_| bad())?;
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::Local => {
                return url.to_file_path().map(Location::Local).map_err(|_| bad());
            }
            ObjectStoreScheme::Memory => Arc::new(InMemory::new()),
            ObjectStoreScheme::AmazonS3 => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| StoreError::Remote {
                        location: location.to_string(),
                        reason: e.to_string(),
                    })?,
            ),
            _ => return Err(bad()),
        };
        Ok(Location::Remote {
            url: location.to_string(),
            store,
            prefix,
        })
    }

    /// Stores `bytes` as `key` (a relative `a/b` name) under this location,
    /// whole or not at all: a local file is written aside, flushed and
    /// renamed into place; an object is one put.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Location::Local(root) => {
                let path = local_key(root, key);
                tokio::task::spawn_blocking(move || durable::replace_synced(&path, &bytes))
                    .await
                    .map_err(|e| remote(&root.display().to_string(), e))?
                    .map_err(|(path, source)| StoreError::Local { path, source })
            }
            Location::Remote { url, store, prefix } => store
                .put(&object_key(prefix, key), bytes.into())
                .await
                .map(drop)
                .map_err(|e| remote(url, e)),
        }
    }

    /// The bytes stored as `key` under this location.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            Location::Local(root) => {
                let path = local_key(root, key);
                tokio::fs::read(&path)
                    .await
                    .map_err(|source| StoreError::Local { path, source })
            }
            Location::Remote { url, store, prefix } => {
                let object = store
                    .get(&object_key(prefix, key))
                    .await
                    .map_err(|e| remote(url, e))?;
                let bytes = object.bytes().await.map_err(|e| remote(url, e))?;
                Ok(bytes.to_vec())
            }
        }
    }

    /// The last part of the location, for file extensions.
    pub fn file_name(&self) -> String {
        match self {
            Location::Local(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Location::Remote { prefix, .. } => prefix.filename().unwrap_or_default().to_string(),
        }
    }
}

fn local_key(root: &Path, key: &str) -> PathBuf {
    key.split('/')
        .fold(root.to_path_buf(), |path, part| path.join(part))
}

fn object_key(prefix: &ObjectPath, key: &str) -> ObjectPath {
    prefix
        .parts()
        .chain(key.split('/').map(PathPart::from))
        .collect()
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Remote { url, .. } => f.write_str(url),
        }
    }
}

/// The one runtime that drives object-store I/O for the blocking callers
/// (the CLI steps, and the server's blocking tasks). It lives as long as
/// the process, so the store clients' pooled connections stay usable.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("starcast-store")
        .enable_all()
        .build()
        .expect("a one-thread tokio runtime starts")
});

/// Runs `future` to its end on the store runtime. Not to be called from
/// async code: the server calls the registry from blocking tasks.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

pub(crate) fn remote(url: &str, error: impl ToString) -> StoreError {
    StoreError::Remote {
        location: url.to_string(),
        reason: error.to_string(),
    }
}

/// Copies every object under a remote prefix whose name ends in
/// `extension` into `folder`, keeping their relative paths; returns the
/// local folder to read. A local location is returned as it is.
pub fn fetch(location: &Location, extension: &str, folder: &Path) -> Result<PathBuf, StoreError> {
    let (url, store, prefix) = match location {
        Location::Local(path) => return Ok(path.clone()),
        Location::Remote { url, store, prefix } => (url, store, prefix),
    };
    block_on(async {
        let mut listing = store.list(Some(prefix));
        let mut objects = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| remote(url, e))?;
            if meta.location.as_ref().ends_with(extension) {
                objects.push(meta.location);
            }
        }
        // A prefix naming one object lists nothing under it: fetch it alone.
        if objects.is_empty() && prefix.as_ref().ends_with(extension) {
            objects.push(prefix.clone());
        }
        for object in objects {
            let relative = object
                .prefix_match(prefix)
                .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
                .filter(|parts| !parts.is_empty())
                .unwrap_or_else(|| vec![object.filename().unwrap_or("object").to_string()]);
            let target = relative
                .iter()
                .fold(folder.to_path_buf(), |p, part| p.join(part));
            download(store, &object, &target, url).await?;
        }
        Ok(folder.to_path_buf())
    })
}

/// Streams a finished local file to a remote location (multipart for big
/// files); a local location needs nothing.
pub fn publish(file: &Path, location: &Location) -> Result<(), StoreError> {
    let Location::Remote { url, store, prefix } = location else {
        return Ok(());
    };
    block_on(upload(file, store, prefix, url))
}

/// Streams a local file to `object` in `store`; `url` names it in errors.
pub(crate) async fn upload(
    file: &Path,
    store: &Arc<dyn ObjectStore>,
    object: &ObjectPath,
    url: &str,
) -> Result<(), StoreError> {
    let local = |source| StoreError::Local {
        path: file.to_path_buf(),
        source,
    };
    let mut source = tokio::fs::File::open(file).await.map_err(local)?;
    let mut writer = BufWriter::new(store.clone(), object.clone());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = source.read(&mut buffer).await.map_err(local)?;
        if read == 0 {
            break;
        }
        writer
            .write_all(&buffer[..read])
            .await
            .map_err(|e| remote(url, e))?;
    }
    writer.shutdown().await.map_err(|e| remote(url, e))
}

/// Streams `object` from `store` into a new local file at `target`
/// (its folder made if needed); `url` names the object in errors.
pub(crate) async fn download(
    store: &Arc<dyn ObjectStore>,
    object: &ObjectPath,
    target: &Path,
    url: &str,
) -> Result<(), StoreError> {
    let local = |source| StoreError::Local {
        path: target.to_path_buf(),
        source,
    };
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(local)?;
    }
    let mut file = tokio::fs::File::create(target).await.map_err(local)?;
    let mut stream = store
        .get(object)
        .await
        .map_err(|e| remote(url, e))?
        .into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| remote(url, e))?;
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)
}
