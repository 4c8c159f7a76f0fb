//! Flagged predictions, as Gradio's flag button keeps them: the input, the
//! output and the reason, stored for review and later evaluation.
//!
//! Each flag is a folder `<root>/<id>/` holding `flag.json` and, for photos,
//! the uploaded file. A flag is written to a hidden folder first and renamed
//! into place, so a crash never leaves half a flag. Actor flags that say who
//! is really in the photo become an evaluation set.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use starcast_api::Task;

/// The longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 2_000;
/// The longest correct label kept, in characters.
pub const MAX_LABEL_CHARS: usize = 200;
const RECORD_FILE: &str = "flag.json";

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
        "the label must be a name of at most {MAX_LABEL_CHARS} characters, without '/', '\\' or a leading '.'"
    )]
    BadLabel,
    #[error("could not store the flag in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the flag record {path} is not valid JSON: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The review queue of flags, in a folder.
#[derive(Clone, Debug)]
pub struct FlagStore {
    root: PathBuf,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FlagError + '_ {
    move |source| FlagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FlagStore {
    /// Opens the store, creating its folder when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FlagError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_error(&root))?;
        Ok(FlagStore { root })
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
                fs::write(&path, bytes).map_err(io_error(&path))?;
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
        let path = folder.join(RECORD_FILE);
        let json = serde_json::to_vec_pretty(&record).expect("a flag record always serialises");
        fs::write(&path, json).map_err(io_error(&path))?;
        Ok(record)
    }

    /// Every stored flag, oldest first. Half-written flags are not listed.
    pub fn list(&self) -> Result<Vec<FlagRecord>, FlagError> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_error(&self.root))? {
            let entry = entry.map_err(io_error(&self.root))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path().join(RECORD_FILE);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&path)(e)),
            };
            let record = serde_json::from_slice(&bytes)
                .map_err(|source| FlagError::Corrupt { path, source })?;
            records.push(record);
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

/// A label usable as a folder name: the user types it, the export makes a
/// folder of it.
fn checked_label(label: &str) -> Result<String, FlagError> {
    let fine = label.chars().count() <= MAX_LABEL_CHARS
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
    fn a_half_written_flag_is_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlagStore::open(dir.path()).unwrap();
        fs::create_dir(dir.path().join(".crashed.partial")).unwrap();
        fs::create_dir(dir.path().join("no-record")).unwrap();
        store.save(flag("ok")).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
