//! Flagged predictions, as Gradio's flag button keeps them: the input, the
//! output and the reason, stored for review and later evaluation.
//!
//! A flag is a row of the records database (`crate::records`), which every
//! replica shares, and for photos a file in the flag photo store (a folder,
//! or a bucket every replica shares) at `<id>/input.<ext>`. The photo is
//! stored whole first and the row inserted after, so a crash never leaves
//! half a flag: at worst a photo no flag names. The queue is bounded: each
//! field in size and nesting, the whole queue by a quota of flags and
//! bytes; a damaged or oversized record is skipped with a warning by every
//! reader. Actor flags that say who is really in the photo become an
//! evaluation set.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use starcast_api::Task;

use crate::records::{Records, RecordsError};
use crate::store::{Location, StoreError};

/// The longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 2_000;
/// The longest correct label kept, in bytes: what a folder name can hold.
pub const MAX_LABEL_BYTES: usize = 255;
/// The largest `input` or `output`, as compact JSON.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// How deep `input` and `output` may nest.
pub const MAX_FIELD_DEPTH: usize = 32;
/// The largest record a reader reads: two full fields and a reason, with room.
const MAX_RECORD_BYTES: u64 = 4 * MAX_FIELD_BYTES as u64;
/// What each flag was kept in before the records database: `<root>/<id>/flag.json`.
const FOLDER_RECORD_FILE: &str = "flag.json";

/// How much the review queue may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub flags: u64,
    /// Records and photos together.
    pub bytes: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            flags: 10_000,
            bytes: 2 << 30,
        }
    }
}

/// A flag as the user sends it.
#[derive(Clone, Debug)]
pub struct NewFlag {
    pub task: Task,
    pub input: serde_json::Value,
    pub output: serde_json::Value,
    pub reason: String,
    /// Who is really in the photo, when the user says.
    pub label: Option<String>,
    /// The uploaded photo and its file extension (`jpg`, `png`, ...).
    pub attachment: Option<(String, Vec<u8>)>,
}

/// A stored flag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlagRecord {
    pub id: String,
    pub task: Task,
    pub flagged_at: DateTime<Utc>,
    pub input: serde_json::Value,
    pub output: serde_json::Value,
    pub reason: String,
    /// Who is really in the photo, when the user said.
    #[serde(default)]
    pub label: Option<String>,
    /// The photo's file name among the flag's files (`input.jpg`).
    pub attachment: Option<String>,
}

impl FlagRecord {
    /// Where the flag's photo is in the photo store.
    fn photo_key(&self) -> Option<String> {
        let name = self.attachment.as_deref()?;
        Some(format!("{}/{name}", self.id))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("the reason is {0} characters long; keep it under {MAX_REASON_CHARS}")]
    ReasonTooLong(usize),
    #[error("the attachment extension '{0}' is not a plain file extension")]
    BadExtension(String),
    #[error(
        "the label must be a name of at most {MAX_LABEL_BYTES} bytes, without '/', '\\' or a leading '.'"
    )]
    BadLabel,
    #[error("the {field} is {bytes} bytes of JSON; keep it under {MAX_FIELD_BYTES}")]
    FieldTooLarge { field: &'static str, bytes: usize },
    #[error("the {field} nests deeper than {MAX_FIELD_DEPTH} levels")]
    FieldTooDeep { field: &'static str },
    #[error(
        "the review queue is full ({flags} flags, {bytes} bytes): an admin needs to review and clear it"
    )]
    Full { flags: u64, bytes: u64 },
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error("could not keep the flag's photo: {0}")]
    Photo(#[from] StoreError),
    #[error("could not read or write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the flag record {id} is damaged: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("the flag record {id} is {bytes} bytes, more than any flag this server stores")]
    Oversized { id: String, bytes: u64 },
}

/// What an export of labelled flagged photos found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelledPhotos {
    /// Every flag in the queue, labelled or not.
    pub queued: usize,
    /// Photos written per label.
    pub per_label: BTreeMap<String, usize>,
}

/// The review queue of flags: rows in the records database, photos in a
/// folder or bucket.
#[derive(Clone, Debug)]
pub struct FlagStore {
    records: Records,
    photos: Location,
    quota: Quota,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FlagError + '_ {
    move |source| FlagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a data folder keeps flagged photos when no other place is named.
pub fn default_photos(data: &Path) -> Location {
    Location::Local(data.join("flags"))
}

impl FlagStore {
    /// Opens the queue in `records`, its photos in `photos`, with the
    /// default quota. Flags an older Starcast kept as files in a photo
    /// folder (`<id>/flag.json`) are moved into the records.
    pub async fn open(records: Records, photos: Location) -> Result<Self, FlagError> {
        let store = FlagStore {
            records,
            photos,
            quota: Quota::default(),
        };
        if let Location::Local(root) = &store.photos {
            store.import_folder_records(root).await?;
        }
        Ok(store)
    }

    /// The same queue, refusing flags beyond `quota`.
    pub fn with_quota(self, quota: Quota) -> Self {
        FlagStore { quota, ..self }
    }

    /// Where the flags' photos are kept.
    pub fn photos(&self) -> &Location {
        &self.photos
    }

    /// Stores a flag and returns its record.
    pub async fn save(&self, flag: NewFlag) -> Result<FlagRecord, FlagError> {
        let reason = flag.reason.trim().to_string();
        let reason_chars = reason.chars().count();
        if reason_chars > MAX_REASON_CHARS {
            return Err(FlagError::ReasonTooLong(reason_chars));
        }
        let label = flag
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(checked_label)
            .transpose()?;
        checked_field("input", &flag.input)?;
        checked_field("output", &flag.output)?;
        if let Some((extension, _)) = &flag.attachment
            && (extension.is_empty() || !extension.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(FlagError::BadExtension(extension.clone()));
        }
        let (flags, bytes) = self.usage().await?;
        let incoming = flag.attachment.as_ref().map_or(0, |(_, b)| b.len() as u64);
        if flags >= self.quota.flags || bytes + incoming > self.quota.bytes {
            return Err(FlagError::Full { flags, bytes });
        }
        // The database keeps milliseconds: so does the record returned.
        let flagged_at = Utc
            .timestamp_millis_opt(Utc::now().timestamp_millis())
            .single()
            .unwrap_or_default();
        let id = format!(
            "{}-{:04}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10_000,
            std::process::id()
        );
        let (attachment, photo) = match flag.attachment {
            Some((extension, bytes)) => (Some(format!("input.{extension}")), Some(bytes)),
            None => (None, None),
        };
        let record = FlagRecord {
            id,
            task: flag.task,
            flagged_at,
            input: flag.input,
            output: flag.output,
            reason,
            label,
            attachment,
        };
        if let (Some(key), Some(photo)) = (record.photo_key(), photo) {
            self.photos.put(&key, photo).await?;
        }
        self.insert(&record, incoming).await?;
        Ok(record)
    }

    /// How many flags the queue holds, and their bytes, across replicas.
    async fn usage(&self) -> Result<(u64, u64), FlagError> {
        let what = "counting the review queue";
        let row =
            sqlx::query("SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM flags")
                .fetch_one(self.records.pool())
                .await
                .map_err(self.records.refused(what))?;
        let flags: i64 = row.try_get(0).map_err(self.records.refused(what))?;
        let bytes: i64 = row.try_get(1).map_err(self.records.refused(what))?;
        Ok((flags.max(0) as u64, bytes.max(0) as u64))
    }

    /// Adds `record` (whose photo has `photo_bytes`) unless a flag of its
    /// id is there already.
    async fn insert(&self, record: &FlagRecord, photo_bytes: u64) -> Result<(), FlagError> {
        let input = record.input.to_string();
        let output = record.output.to_string();
        let bytes = (input.len() + output.len() + record.reason.len()) as u64 + photo_bytes;
        sqlx::query(
            "INSERT INTO flags \
             (id, task, flagged_at_ms, input, output, reason, label, attachment, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&record.id)
        .bind(record.task.as_str())
        .bind(record.flagged_at.timestamp_millis())
        .bind(input)
        .bind(output)
        .bind(&record.reason)
        .bind(record.label.as_deref())
        .bind(record.attachment.as_deref())
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .execute(self.records.pool())
        .await
        .map_err(self.records.refused("the new flag"))?;
        Ok(())
    }

    /// Every stored flag, oldest first. A damaged or oversized record is
    /// skipped with a warning, so one bad flag can't fail a step that
    /// reads them all.
    pub async fn list(&self) -> Result<Vec<FlagRecord>, FlagError> {
        let rows = sqlx::query(
            "SELECT id, task, flagged_at_ms, input, output, reason, label, attachment \
             FROM flags ORDER BY id",
        )
        .fetch_all(self.records.pool())
        .await
        .map_err(self.records.refused("listing the review queue"))?;
        Ok(rows
            .iter()
            .filter_map(|row| match flag_of(row) {
                Ok(record) => Some(record),
                Err(error) => {
                    tracing::warn!(%error, "skipping a flag that can't be read");
                    None
                }
            })
            .collect())
    }

    /// The photo of a flag that has one.
    pub async fn photo(&self, record: &FlagRecord) -> Result<Option<Vec<u8>>, FlagError> {
        match record.photo_key() {
            Some(key) => Ok(Some(self.photos.get(&key).await?)),
            None => Ok(None),
        }
    }

    /// Copies every actor flag's photo that has a correct label to
    /// `out/<label>/<flag id>.<ext>`, a dataset `starcast evaluate` reads;
    /// says how many flags the queue holds and how many photos each label
    /// got. A photo that can't be read is skipped with a warning.
    pub async fn export_labelled(&self, out: &Path) -> Result<LabelledPhotos, FlagError> {
        let mut counts = BTreeMap::new();
        let flags = self.list().await?;
        let queued = flags.len();
        for record in flags {
            let (Task::Actors, Some(label), Some(name)) =
                (record.task, &record.label, &record.attachment)
            else {
                continue;
            };
            let photo = match self.photo(&record).await {
                Ok(Some(photo)) => photo,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(id = %record.id, %error, "skipping a flag whose photo can't be read");
                    continue;
                }
            };
            let folder = out.join(label);
            fs::create_dir_all(&folder).map_err(io_error(&folder))?;
            let extension = Path::new(name)
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = folder.join(format!("{}.{extension}", record.id));
            fs::write(&target, photo).map_err(io_error(&target))?;
            *counts.entry(label.clone()).or_insert(0) += 1;
        }
        Ok(LabelledPhotos {
            queued,
            per_label: counts,
        })
    }

    /// Moves the flags kept as `<root>/<id>/flag.json` into the records,
    /// leaving their photos where they are: the same keys.
    async fn import_folder_records(&self, root: &Path) -> Result<(), FlagError> {
        let root = root.to_path_buf();
        let found = tokio::task::spawn_blocking(move || folder_records(&root))
            .await
            .map_err(|e| io_error(Path::new("the flag folder"))(io::Error::other(e)))??;
        for (file, record, photo_bytes) in found {
            self.insert(&record, photo_bytes).await?;
            fs::remove_file(&file).map_err(io_error(&file))?;
            tracing::info!(id = %record.id, "a flag kept as a file moved into the records");
        }
        Ok(())
    }
}

/// A flag from its row, or why the row can't be one.
fn flag_of(row: &sqlx::any::AnyRow) -> Result<FlagRecord, FlagError> {
    let id: String = row.try_get(0).unwrap_or_default();
    let corrupt = |reason: String| FlagError::Corrupt {
        id: id.clone(),
        reason,
    };
    let text = |index: usize| -> Result<String, FlagError> {
        row.try_get(index).map_err(|e| corrupt(e.to_string()))
    };
    let (input, output, reason) = (text(3)?, text(4)?, text(5)?);
    let bytes = (input.len() + output.len() + reason.len()) as u64;
    if bytes > MAX_RECORD_BYTES {
        return Err(FlagError::Oversized { id, bytes });
    }
    let json = |text: &str| -> Result<serde_json::Value, FlagError> {
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))
    };
    let task: Task = text(1)?.parse().map_err(|e| corrupt(format!("{e}")))?;
    let at_ms: i64 = row.try_get(2).map_err(|e| corrupt(e.to_string()))?;
    let optional = |index: usize| -> Result<Option<String>, FlagError> {
        row.try_get(index).map_err(|e| corrupt(e.to_string()))
    };
    if !is_plain_name(&id) {
        return Err(corrupt("its id is not a plain name".into()));
    }
    let attachment = optional(7)?;
    if attachment
        .as_deref()
        .is_some_and(|name| !is_plain_name(name))
    {
        return Err(corrupt("its photo's name is not a plain file name".into()));
    }
    Ok(FlagRecord {
        task,
        flagged_at: Utc
            .timestamp_millis_opt(at_ms)
            .single()
            .ok_or_else(|| corrupt(format!("{at_ms} is not a time")))?,
        input: json(&input)?,
        output: json(&output)?,
        reason,
        label: optional(6)?,
        attachment,
        id: id.clone(),
    })
}

/// The flags kept as files under `root`, each with its record file and
/// its photo's size; unreadable ones are left where they are, with a
/// warning.
fn folder_records(root: &Path) -> Result<Vec<(PathBuf, FlagRecord, u64)>, FlagError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(root)(e)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.path().join(FOLDER_RECORD_FILE);
        if name.starts_with('.') || !file.is_file() {
            continue;
        }
        match read_folder_record(&file) {
            Ok(record) if record.id == name => {
                let photo_bytes = record
                    .attachment
                    .as_ref()
                    .and_then(|photo| fs::metadata(entry.path().join(photo)).ok())
                    .map_or(0, |m| m.len());
                found.push((file, record, photo_bytes));
            }
            Ok(_) => {
                tracing::warn!(path = %file.display(), "a flag file names another flag; left as it is")
            }
            Err(error) => tracing::warn!(%error, "a flag file can't be read; left as it is"),
        }
    }
    Ok(found)
}

fn read_folder_record(path: &Path) -> Result<FlagRecord, FlagError> {
    let size = fs::metadata(path).map_err(io_error(path))?.len();
    let id = path.display().to_string();
    if size > MAX_RECORD_BYTES {
        return Err(FlagError::Oversized { id, bytes: size });
    }
    let bytes = fs::read(path).map_err(io_error(path))?;
    let record: FlagRecord = serde_json::from_slice(&bytes).map_err(|e| FlagError::Corrupt {
        id: id.clone(),
        reason: e.to_string(),
    })?;
    if record
        .attachment
        .as_deref()
        .is_some_and(|name| !is_plain_name(name))
    {
        return Err(FlagError::Corrupt {
            id,
            reason: "its photo's name is not a plain file name".into(),
        });
    }
    Ok(record)
}

/// Refuses an `input` or `output` too large or too deep to keep.
fn checked_field(field: &'static str, value: &serde_json::Value) -> Result<(), FlagError> {
    if depth(value) > MAX_FIELD_DEPTH {
        return Err(FlagError::FieldTooDeep { field });
    }
    let bytes = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if bytes > MAX_FIELD_BYTES {
        return Err(FlagError::FieldTooLarge { field, bytes });
    }
    Ok(())
}

/// How many arrays and objects nest in `value` (a scalar: 0).
fn depth(value: &serde_json::Value) -> usize {
    let inner = match value {
        serde_json::Value::Array(items) => items.iter().map(depth).max(),
        serde_json::Value::Object(entries) => entries.values().map(depth).max(),
        _ => return 0,
    };
    1 + inner.unwrap_or(0)
}

/// A label usable as a folder name: the user types it, the export makes a
/// folder of it.
fn checked_label(label: &str) -> Result<String, FlagError> {
    if is_plain_name(label) {
        Ok(label.to_string())
    } else {
        Err(FlagError::BadLabel)
    }
}

/// A name that stays one file or folder inside the folder it is joined to.
fn is_plain_name(name: &str) -> bool {
    name.len() <= MAX_LABEL_BYTES && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(reason: &str) -> NewFlag {
        NewFlag {
            task: Task::Actors,
            input: json!({"file": "obama.jpg"}),
            output: json!({"predictions": [{"label": "biden", "score": 0.9}]}),
            reason: reason.into(),
            label: None,
            attachment: Some(("jpg".into(), vec![0xff, 0xd8, 0xff])),
        }
    }

    async fn records_in(dir: &Path) -> Records {
        let url = format!("sqlite://{}", dir.join("records.db").display());
        Records::open(&url).await.unwrap()
    }

    /// A queue in `dir`: records in `records.db`, photos in `flags/`.
    async fn store_in(dir: &Path) -> FlagStore {
        let photos = Location::Local(dir.join("flags"));
        FlagStore::open(records_in(dir).await, photos)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn flags_that_name_the_actor_become_an_evaluation_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let labelled = |label: &str| NewFlag {
            label: Some(label.into()),
            ..flag("wrong actor")
        };
        store.save(labelled(" Barack Obama ")).await.unwrap();
        store.save(labelled("Barack Obama")).await.unwrap();
        store.save(labelled("Joe Biden")).await.unwrap();
        store.save(flag("no label")).await.unwrap();
        store
            .save(NewFlag {
                task: Task::Horoscope,
                attachment: None,
                ..labelled("Leo")
            })
            .await
            .unwrap();
        for bad in ["../etc", "a/b", ".hidden"] {
            let err = store.save(labelled(bad)).await.unwrap_err();
            assert!(matches!(err, FlagError::BadLabel), "{bad}: {err}");
        }
        let out = dir.path().join("flagged");
        let counts = store.export_labelled(&out).await.unwrap();
        assert_eq!(counts.queued, 5);
        assert_eq!(
            counts.per_label.into_iter().collect::<Vec<_>>(),
            [
                ("Barack Obama".to_string(), 2),
                ("Joe Biden".to_string(), 1)
            ]
        );
        let photos = fs::read_dir(out.join("Barack Obama")).unwrap().count();
        assert_eq!(photos, 2);
    }

    #[tokio::test]
    async fn saved_flags_are_listed_with_their_photo() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let first = store.save(flag("  wrong actor ")).await.unwrap();
        let second = store
            .save(NewFlag {
                task: Task::Horoscope,
                attachment: None,
                ..flag("too short")
            })
            .await
            .unwrap();
        assert_eq!(first.reason, "wrong actor");
        let listed = store.list().await.unwrap();
        assert_eq!(listed, vec![first.clone(), second.clone()]);
        let photo = dir.path().join("flags").join(&first.id).join("input.jpg");
        assert_eq!(fs::read(photo).unwrap(), vec![0xff, 0xd8, 0xff]);
        assert_eq!(
            store.photo(&first).await.unwrap(),
            Some(vec![0xff, 0xd8, 0xff])
        );
        assert_eq!(store.photo(&second).await.unwrap(), None);

        // Another replica (or a restart) opening the same records sees them.
        let again = store_in(dir.path()).await;
        assert_eq!(again.list().await.unwrap(), vec![first, second]);
    }

    #[tokio::test]
    async fn photos_may_live_in_an_object_store() {
        let dir = tempfile::tempdir().unwrap();
        let photos = Location::parse("memory:///flags").unwrap();
        let store = FlagStore::open(records_in(dir.path()).await, photos)
            .await
            .unwrap();
        let saved = store
            .save(NewFlag {
                label: Some("Ada".into()),
                ..flag("wrong")
            })
            .await
            .unwrap();
        assert_eq!(
            store.photo(&saved).await.unwrap(),
            Some(vec![0xff, 0xd8, 0xff])
        );
        let out = dir.path().join("flagged");
        let counts = store.export_labelled(&out).await.unwrap();
        assert_eq!(counts.per_label.get("Ada"), Some(&1));
        let exported = out.join("Ada").join(format!("{}.jpg", saved.id));
        assert_eq!(fs::read(exported).unwrap(), vec![0xff, 0xd8, 0xff]);
        assert!(!dir.path().join("flags").exists(), "nothing on disk");
    }

    #[tokio::test]
    async fn refuses_long_reasons_and_odd_extensions_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let long = "é".repeat(MAX_REASON_CHARS + 1);
        assert!(matches!(
            store.save(flag(&long)).await,
            Err(FlagError::ReasonTooLong(n)) if n == MAX_REASON_CHARS + 1
        ));
        let escaping = NewFlag {
            attachment: Some(("/../../x".into(), vec![1])),
            ..flag("x")
        };
        assert!(matches!(
            store.save(escaping).await,
            Err(FlagError::BadExtension(_))
        ));
        assert!(!dir.path().join("flags").exists());
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn fields_are_bounded_in_size_and_nesting_and_stored_compact() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let mut deep = json!(1);
        for _ in 0..=MAX_FIELD_DEPTH {
            deep = json!([deep]);
        }
        let err = store
            .save(NewFlag {
                input: deep,
                ..flag("x")
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, FlagError::FieldTooDeep { field: "input" }),
            "{err}"
        );
        let wide = json!(vec![[[0]]; MAX_FIELD_BYTES]);
        let err = store
            .save(NewFlag {
                output: wide,
                ..flag("x")
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FlagError::FieldTooLarge {
                    field: "output",
                    ..
                }
            ),
            "{err}"
        );
        let err = store
            .save(NewFlag {
                label: Some("é".repeat(MAX_LABEL_BYTES / 2 + 1)),
                ..flag("x")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, FlagError::BadLabel), "{err}");
        assert!(store.list().await.unwrap().is_empty(), "nothing was stored");
        store
            .save(NewFlag {
                input: json!({"nested": {"a": [1, 2]}}),
                ..flag("ok")
            })
            .await
            .unwrap();
        let stored: String = sqlx::query_scalar("SELECT input FROM flags")
            .fetch_one(store.records.pool())
            .await
            .unwrap();
        assert_eq!(stored, r#"{"nested":{"a":[1,2]}}"#);
    }

    #[tokio::test]
    async fn the_queue_stops_at_its_quota_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota {
            flags: 2,
            bytes: 1 << 20,
        };
        let store = store_in(dir.path()).await.with_quota(quota);
        store.save(flag("one")).await.unwrap();
        store.save(flag("two")).await.unwrap();
        let err = store.save(flag("three")).await.unwrap_err();
        assert!(matches!(err, FlagError::Full { flags: 2, .. }), "{err}");
        let reopened = store_in(dir.path()).await.with_quota(quota);
        assert!(matches!(
            reopened.save(flag("four")).await,
            Err(FlagError::Full { .. })
        ));
        let roomy = store_in(dir.path()).await.with_quota(Quota {
            flags: 10,
            bytes: 1 << 20,
        });
        let big = NewFlag {
            attachment: Some(("jpg".into(), vec![0; 2 << 20])),
            ..flag("a photo over the byte quota")
        };
        assert!(matches!(roomy.save(big).await, Err(FlagError::Full { .. })));
        assert_eq!(roomy.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_damaged_or_oversized_record_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let kept = store
            .save(NewFlag {
                label: Some("Ada".into()),
                ..flag("ok")
            })
            .await
            .unwrap();
        let huge = format!("[{}1]", "1,".repeat(MAX_RECORD_BYTES as usize));
        let bad_rows = [
            ("damaged", "actors", "{not json", "Ada", "input.jpg"),
            ("huge", "actors", huge.as_str(), "Ada", "input.jpg"),
            ("weather", "weather", "{}", "Ada", "input.jpg"),
            ("escaping", "actors", "{}", "Ada", "../../etc/passwd"),
            ("../../etc", "actors", "{}", "Ada", "passwd"),
        ];
        for (id, task, input, label, attachment) in bad_rows {
            sqlx::query(
                "INSERT INTO flags (id, task, flagged_at_ms, input, output, reason, label, attachment, bytes) \
                 VALUES ($1, $2, 0, $3, '{}', '', $4, $5, 0)",
            )
            .bind(id)
            .bind(task)
            .bind(input)
            .bind(label)
            .bind(attachment)
            .execute(store.records.pool())
            .await
            .unwrap();
        }
        assert_eq!(store.list().await.unwrap(), vec![kept]);
        let counts = store
            .export_labelled(&dir.path().join("out"))
            .await
            .unwrap();
        assert_eq!(counts.queued, 1, "the damaged rows are not counted");
        assert_eq!(counts.per_label.get("Ada"), Some(&1));
    }

    #[tokio::test]
    async fn a_photo_whose_row_was_never_written_is_no_flag() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let orphan = dir.path().join("flags").join("crashed");
        fs::create_dir_all(&orphan).unwrap();
        fs::write(orphan.join("input.jpg"), [0xff, 0xd8]).unwrap();
        fs::write(dir.path().join("flags").join(".input.jpg.partial"), [1]).unwrap();
        store.save(flag("ok")).await.unwrap();
        assert_eq!(store.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn flags_kept_as_files_by_an_older_starcast_move_into_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("flags");
        let old = FlagRecord {
            id: "20261201T101010.000001Z-0001-42".into(),
            task: Task::Actors,
            flagged_at: Utc.timestamp_millis_opt(1_764_583_810_000).unwrap(),
            input: json!({"file": "me.jpg"}),
            output: json!({"predictions": []}),
            reason: "not me".into(),
            label: Some("Ada".into()),
            attachment: Some("input.jpg".into()),
        };
        let flag_folder = folder.join(&old.id);
        fs::create_dir_all(&flag_folder).unwrap();
        fs::write(
            flag_folder.join(FOLDER_RECORD_FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        fs::write(flag_folder.join("input.jpg"), [0xff, 0xd8, 0xff]).unwrap();
        fs::create_dir_all(folder.join("damaged")).unwrap();
        fs::write(folder.join("damaged").join(FOLDER_RECORD_FILE), "{oops").unwrap();

        let store = store_in(dir.path()).await;
        assert_eq!(store.list().await.unwrap(), vec![old.clone()]);
        assert_eq!(
            store.photo(&old).await.unwrap(),
            Some(vec![0xff, 0xd8, 0xff])
        );
        assert!(!flag_folder.join(FOLDER_RECORD_FILE).exists());
        assert!(
            folder.join("damaged").join(FOLDER_RECORD_FILE).exists(),
            "a damaged file is left for a person to look at"
        );
        let again = store_in(dir.path()).await;
        assert_eq!(again.list().await.unwrap().len(), 1, "moved once");
    }
}
