//! Flagged predictions, as Gradio's flag button keeps them: the input, the
//! output and the reason, stored for review and later evaluation.
//!
//! Each flag is a folder `<root>/<id>/` holding `flag.json` (compact) and,
//! for photos, the uploaded file. A flag is written to a hidden folder,
//! flushed to disk and renamed into place, so a crash never leaves half a
//! flag. The store is bounded: each field in size and nesting, the whole
//! queue by a quota of flags and bytes; a damaged or oversized record is
//! skipped with a warning by every reader. Actor flags that say who is
//! really in the photo become an evaluation set.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use starcast_api::Task;

use crate::durable::{sync_dir, write_synced};

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
const RECORD_FILE: &str = "flag.json";

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
    /// The attachment's file name inside the flag's folder.
    pub attachment: Option<String>,
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
    #[error("could not store the flag in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the flag record {path} is not valid JSON: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the flag record {path} is {bytes} bytes, more than any flag this server stores")]
    Oversized { path: PathBuf, bytes: u64 },
}

/// The review queue of flags, in a folder.
#[derive(Clone, Debug)]
pub struct FlagStore {
    root: PathBuf,
    quota: Quota,
    usage: Arc<Usage>,
}

/// What the queue holds now: counted when the store opens, then kept up
/// to date by each save.
#[derive(Debug, Default)]
struct Usage {
    flags: AtomicU64,
    bytes: AtomicU64,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FlagError + '_ {
    move |source| FlagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FlagStore {
    /// Opens the store with the default quota, creating its folder when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FlagError> {
        Self::with_quota(root, Quota::default())
    }

    /// Opens the store, refusing flags beyond `quota`.
    pub fn with_quota(root: impl Into<PathBuf>, quota: Quota) -> Result<Self, FlagError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_error(&root))?;
        let usage = Usage::default();
        for entry in fs::read_dir(&root).map_err(io_error(&root))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            usage.flags.fetch_add(1, Ordering::Relaxed);
            let files = fs::read_dir(entry.path()).into_iter().flatten().flatten();
            let bytes: u64 = files
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
            usage.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(FlagStore {
            root,
            quota,
            usage: Arc::new(usage),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores a flag and returns its record.
    pub fn save(&self, flag: NewFlag) -> Result<FlagRecord, FlagError> {
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
        let (flags, bytes) = (
            self.usage.flags.load(Ordering::Relaxed),
            self.usage.bytes.load(Ordering::Relaxed),
        );
        let incoming = flag.attachment.as_ref().map_or(0, |(_, b)| b.len() as u64);
        if flags >= self.quota.flags || bytes + incoming > self.quota.bytes {
            return Err(FlagError::Full { flags, bytes });
        }
        let flagged_at = Utc::now();
        let id = format!(
            "{}-{:04}-{}",
            flagged_at.format("%Y%m%dT%H%M%S%.6fZ"),
            SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10_000,
            std::process::id()
        );
        let staging = self.root.join(format!(".{id}.partial"));
        fs::create_dir(&staging).map_err(io_error(&staging))?;
        let flag = NewFlag { label, ..flag };
        let written = self.write_flag(&staging, id, flagged_at, flag, reason);
        let record = match written {
            Ok(record) => record,
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let target = self.root.join(&record.id);
        fs::rename(&staging, &target).map_err(io_error(&target))?;
        sync_dir(&self.root).map_err(io_error(&self.root))?;
        self.usage.flags.fetch_add(1, Ordering::Relaxed);
        let stored: u64 = fs::read_dir(&target)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        self.usage.bytes.fetch_add(stored, Ordering::Relaxed);
        Ok(record)
    }

    fn write_flag(
        &self,
        folder: &Path,
        id: String,
        flagged_at: DateTime<Utc>,
        flag: NewFlag,
        reason: String,
    ) -> Result<FlagRecord, FlagError> {
        let attachment = match flag.attachment {
            Some((extension, bytes)) => {
                if extension.is_empty() || !extension.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(FlagError::BadExtension(extension));
                }
                let name = format!("input.{extension}");
                let path = folder.join(&name);
                write_synced(&path, &bytes).map_err(io_error(&path))?;
                Some(name)
            }
            None => None,
        };
        let record = FlagRecord {
            id,
            task: flag.task,
            flagged_at,
            input: flag.input,
            output: flag.output,
            reason,
            label: flag.label,
            attachment,
        };
        let json = serde_json::to_vec(&record).expect("a flag record always serialises");
        let path = folder.join(RECORD_FILE);
        write_synced(&path, &json).map_err(io_error(&path))?;
        sync_dir(folder).map_err(io_error(folder))?;
        Ok(record)
    }

    /// Every stored flag, oldest first. Half-written flags are not listed;
    /// a damaged or oversized record is skipped with a warning, so one bad
    /// flag can't fail a step that reads them all.
    pub fn list(&self) -> Result<Vec<FlagRecord>, FlagError> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_error(&self.root))? {
            let entry = entry.map_err(io_error(&self.root))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path().join(RECORD_FILE);
            match read_record(&path) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "skipping a flag that can't be read"),
            }
        }
        records.sort_by(|a: &FlagRecord, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Copies every actor flag's photo that has a correct label to
    /// `out/<label>/<flag id>.<ext>`, a dataset `starcast evaluate` reads;
    /// returns how many photos each label got.
    pub fn export_labelled(&self, out: &Path) -> Result<BTreeMap<String, usize>, FlagError> {
        let mut counts = BTreeMap::new();
        for record in self.list()? {
            let (Task::Actors, Some(label), Some(photo)) =
                (record.task, &record.label, &record.attachment)
            else {
                continue;
            };
            let folder = out.join(label);
            fs::create_dir_all(&folder).map_err(io_error(&folder))?;
            let extension = Path::new(photo)
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = folder.join(format!("{}.{extension}", record.id));
            let source = self.root.join(&record.id).join(photo);
            fs::copy(&source, &target).map_err(io_error(&source))?;
            *counts.entry(label.clone()).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

/// One record; none when the folder has no record (not a flag).
fn read_record(path: &Path) -> Result<Option<FlagRecord>, FlagError> {
    let size = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    if size > MAX_RECORD_BYTES {
        return Err(FlagError::Oversized {
            path: path.to_path_buf(),
            bytes: size,
        });
    }
    let bytes = fs::read(path).map_err(io_error(path))?;
    serde_json::from_slice(&bytes).map_err(|source| FlagError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
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
    let fine = label.len() <= MAX_LABEL_BYTES
        && !label.starts_with('.')
        && !label.contains(['/', '\\', '\0']);
    if fine {
        Ok(label.to_string())
    } else {
        Err(FlagError::BadLabel)
    }
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

    #[test]
    fn flags_that_name_the_actor_become_an_evaluation_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path().join("flags")).unwrap();
        let labelled = |label: &str| NewFlag {
            label: Some(label.into()),
            ..flag("wrong actor")
        };
        store.save(labelled(" Barack Obama ")).unwrap();
        store.save(labelled("Barack Obama")).unwrap();
        store.save(labelled("Joe Biden")).unwrap();
        store.save(flag("no label")).unwrap();
        store
            .save(NewFlag {
                task: Task::Horoscope,
                attachment: None,
                ..labelled("Leo")
            })
            .unwrap();
        for bad in ["../etc", "a/b", ".hidden"] {
            let err = store.save(labelled(bad)).unwrap_err();
            assert!(matches!(err, FlagError::BadLabel), "{bad}: {err}");
        }
        let out = dir.path().join("flagged");
        let counts = store.export_labelled(&out).unwrap();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [
                ("Barack Obama".to_string(), 2),
                ("Joe Biden".to_string(), 1)
            ]
        );
        let photos = fs::read_dir(out.join("Barack Obama")).unwrap().count();
        assert_eq!(photos, 2);
    }

    #[test]
    fn saved_flags_are_listed_with_their_photo() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path().join("flags")).unwrap();
        let first = store.save(flag("  wrong actor ")).unwrap();
        let second = store
            .save(NewFlag {
                task: Task::Horoscope,
                attachment: None,
                ..flag("too short")
            })
            .unwrap();
        assert_eq!(first.reason, "wrong actor");
        let listed = store.list().unwrap();
        assert_eq!(listed, vec![first.clone(), second]);
        let photo = store.root().join(&first.id).join("input.jpg");
        assert_eq!(fs::read(photo).unwrap(), vec![0xff, 0xd8, 0xff]);
    }

    #[test]
    fn refuses_long_reasons_and_odd_extensions_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path()).unwrap();
        let long = "é".repeat(MAX_REASON_CHARS + 1);
        assert!(matches!(
            store.save(flag(&long)),
            Err(FlagError::ReasonTooLong(n)) if n == MAX_REASON_CHARS + 1
        ));
        let escaping = NewFlag {
            attachment: Some(("/../../x".into(), vec![1])),
            ..flag("x")
        };
        assert!(matches!(
            store.save(escaping),
            Err(FlagError::BadExtension(_))
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn fields_are_bounded_in_size_and_nesting_and_stored_compact() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path()).unwrap();
        let mut deep = json!(1);
        for _ in 0..=MAX_FIELD_DEPTH {
            deep = json!([deep]);
        }
        let err = store
            .save(NewFlag {
                input: deep,
                ..flag("x")
            })
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
            .unwrap_err();
        assert!(matches!(err, FlagError::BadLabel), "{err}");
        assert!(store.list().unwrap().is_empty(), "nothing was stored");
        let saved = store.save(flag("ok")).unwrap();
        let text = fs::read_to_string(dir.path().join(&saved.id).join(RECORD_FILE)).unwrap();
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn the_queue_stops_at_its_quota_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota {
            flags: 2,
            bytes: 1 << 20,
        };
        let store = FlagStore::with_quota(dir.path(), quota).unwrap();
        store.save(flag("one")).unwrap();
        store.save(flag("two")).unwrap();
        let err = store.save(flag("three")).unwrap_err();
        assert!(matches!(err, FlagError::Full { flags: 2, .. }), "{err}");
        let reopened = FlagStore::with_quota(dir.path(), quota).unwrap();
        assert!(matches!(
            reopened.save(flag("four")),
            Err(FlagError::Full { .. })
        ));
        let roomy = FlagStore::with_quota(
            dir.path(),
            Quota {
                flags: 10,
                bytes: 1 << 20,
            },
        )
        .unwrap();
        let big = NewFlag {
            attachment: Some(("jpg".into(), vec![0; 2 << 20])),
            ..flag("a photo over the byte quota")
        };
        assert!(matches!(roomy.save(big), Err(FlagError::Full { .. })));
        assert_eq!(roomy.list().unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_or_oversized_record_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path()).unwrap();
        let kept = store.save(flag("ok")).unwrap();
        fs::create_dir(dir.path().join("damaged")).unwrap();
        fs::write(dir.path().join("damaged").join(RECORD_FILE), "{not json").unwrap();
        fs::create_dir(dir.path().join("huge")).unwrap();
        let huge = format!("[{}1]", "1,".repeat(MAX_RECORD_BYTES as usize));
        fs::write(dir.path().join("huge").join(RECORD_FILE), huge).unwrap();
        assert_eq!(store.list().unwrap(), vec![kept]);
        let counts = store.export_labelled(&dir.path().join("out")).unwrap();
        assert!(counts.is_empty());
    }

    #[test]
    fn a_half_written_flag_is_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path()).unwrap();
        fs::create_dir(dir.path().join(".crashed.partial")).unwrap();
        fs::create_dir(dir.path().join("no-record")).unwrap();
        store.save(flag("ok")).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
