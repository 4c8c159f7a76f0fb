//! The model registry: every trained model is a numbered version (a model
//! folder plus its lineage), and one version per task is the one served.
//!
//! ```text
//! <root>/<task>/versions/v1/      config.json, model.safetensors, metrics.json, lineage.json, ...
//! <root>/<task>/registry.json     {"serving": "v1", "events": [...]}
//! ```
//!
//! The root is a folder ([`folder`]) or a prefix in an object store such as
//! S3 ([`bucket`]), which several servers and a training machine can share.
//! Either way a version is complete before anything can point at it, and
//! the pointer is replaced only if nobody replaced it since it was read
//! (a compare-and-swap, retried), so two promoters can't lose each other's
//! event and no server ever serves a half-written model.

mod bucket;
mod folder;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::UpdateVersion;
use serde::{Deserialize, Serialize};
pub use starcast_api::Task;
use starcast_model::folder::{LoadError, ModelConfig};

use crate::store::{Location, StoreError};

/// Where a version came from: enough to retrain it or explain it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub created: DateTime<Utc>,
    /// The dataset as the user named it (a folder or a URL).
    pub dataset: String,
    /// A hash of every file's name and content: equal hashes, same data.
    pub dataset_hash: String,
    /// The model it was fine-tuned from.
    pub base_model: String,
    /// The training options, as given.
    pub parameters: serde_json::Value,
    /// The code that trained it (`starcast` version and commit).
    pub code_revision: String,
}

/// One registered version.
#[derive(Clone, Debug, Serialize)]
pub struct Version {
    pub id: String,
    /// A local folder with its files: the version's own folder in a folder
    /// registry, the local copy of a bucket registry's version.
    pub path: PathBuf,
    pub lineage: Lineage,
    /// The top-level numbers of its `metrics.json`.
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// Its `config.json` labels, in class order (empty for text models).
    pub labels: Vec<String>,
}

/// What moved the serving pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A version was chosen to be served.
    Promote,
    /// The version served before the current one came back.
    Rollback,
}

/// What happened to the serving pointer, newest last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub action: Action,
    pub version: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Pointer {
    serving: Option<String>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{location} is damaged ({reason}): restore it from a backup or delete it to start the registry afresh"
    )]
    Damaged { location: String, reason: String },
    #[error(
        "the {task} registry has no version '{version}': `starcast models list --task {task}` shows the versions"
    )]
    UnknownVersion { task: Task, version: String },
    #[error("the {task} registry has no earlier serving version to roll back to")]
    NothingToRollBack { task: Task },
    #[error(
        "the {task} serving pointer in {location} changed under every one of {attempts} attempts to move it: try again"
    )]
    Contended {
        task: Task,
        location: String,
        attempts: u32,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a pointer was replaced, or someone else replaced it first.
#[derive(Debug, PartialEq, Eq)]
enum Replaced {
    Done,
    Changed,
}

/// What a registry's root does; everything else is shared.
trait Storage: fmt::Debug + Send + Sync {
    /// The root as the user named it.
    fn location(&self) -> &str;
    /// A new local folder to write a version of `task` into.
    fn stage(&self, task: Task) -> Result<PathBuf, RegistryError>;
    /// Makes the staged folder the next version of `task` and returns its
    /// id; [`seal`] writes its lineage and id once the id is known.
    fn commit(&self, task: Task, staged: &Path, lineage: &Lineage)
    -> Result<String, RegistryError>;
    /// The complete versions' ids, oldest first.
    fn version_ids(&self, task: Task) -> Result<Vec<String>, RegistryError>;
    /// Whether `id` is a complete version.
    fn has_version(&self, task: Task, id: &str) -> Result<bool, RegistryError>;
    /// Where version `id`'s files are kept, as a path or URL.
    fn version_location(&self, task: Task, id: &str) -> String;
    /// A local folder with the files of the complete version `id`.
    fn version_folder(&self, task: Task, id: &str) -> Result<PathBuf, RegistryError>;
    /// The pointer as it is now, and the tag that names this state of it
    /// (none while there is no pointer yet).
    fn read_pointer(&self, task: Task) -> Result<(Pointer, Option<UpdateVersion>), RegistryError>;
    /// Writes `pointer` only if the pointer is still in the state `tag` names.
    fn replace_pointer(
        &self,
        task: Task,
        pointer: &Pointer,
        tag: Option<&UpdateVersion>,
    ) -> Result<Replaced, RegistryError>;
}

/// A registry rooted at a folder (`data/registry` by default) or in a bucket.
#[derive(Clone, Debug)]
pub struct Registry {
    storage: Arc<dyn Storage>,
}

/// A version being written: a local folder removed unless committed.
#[derive(Debug)]
pub struct Staged {
    task: Task,
    path: PathBuf,
}

impl Staged {
    /// The folder to write the model into.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staged {
    /// A staged version that was never committed (an error, a panic) is removed.
    fn drop(&mut self) {
        if self.path.exists() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// How often a pointer move is tried before it gives up.
const POINTER_ATTEMPTS: u32 = 64;

impl Registry {
    /// A registry in a local folder.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Registry {
            storage: Arc::new(folder::Folder::new(root.into())),
        }
    }

    /// A registry at a local path, `file://path`, `s3://bucket/prefix` or
    /// `memory://`. A bucket's versions are copied into a local cache
    /// (under `$XDG_CACHE_HOME` or `~/.cache`) when first read.
    pub fn open(location: &str) -> Result<Self, RegistryError> {
        Ok(match Location::parse(location)? {
            Location::Local(root) => Registry::new(root),
            Location::Remote { url, store, prefix } => {
                let cache = bucket::default_cache(&url);
                Registry {
                    storage: Arc::new(bucket::Bucket::new(url, store, prefix, cache)),
                }
            }
        })
    }

    /// A fresh staging folder for a new version of `task`.
    pub fn stage(&self, task: Task) -> Result<Staged, RegistryError> {
        Ok(Staged {
            task,
            path: self.storage.stage(task)?,
        })
    }

    /// Makes a staged folder the next version: writes its lineage, stamps
    /// the version into `config.json` and stores it whole. Nothing is
    /// served until it is promoted.
    pub fn commit(&self, staged: Staged, lineage: &Lineage) -> Result<Version, RegistryError> {
        let id = self.storage.commit(staged.task, &staged.path, lineage)?;
        self.version(staged.task, &id)
    }

    /// Every version of `task`, oldest first (a bucket's are copied into
    /// the local cache).
    pub fn versions(&self, task: Task) -> Result<Vec<Version>, RegistryError> {
        self.storage
            .version_ids(task)?
            .iter()
            .map(|id| self.version(task, id))
            .collect()
    }

    /// One version by id (`v3`).
    pub fn version(&self, task: Task, id: &str) -> Result<Version, RegistryError> {
        self.check_version(task, id)?;
        let path = self.storage.version_folder(task, id)?;
        read_version(id, path)
    }

    /// Where version `id`'s files are kept: an absolute path in a folder
    /// registry, a URL in a bucket.
    pub fn version_location(&self, task: Task, id: &str) -> Result<String, RegistryError> {
        self.check_version(task, id)?;
        Ok(self.storage.version_location(task, id))
    }

    fn check_version(&self, task: Task, id: &str) -> Result<(), RegistryError> {
        if version_number(id).is_some() && self.storage.has_version(task, id)? {
            return Ok(());
        }
        Err(RegistryError::UnknownVersion {
            task,
            version: id.to_string(),
        })
    }

    /// The id of the version served now, if any: one small read, for
    /// servers that poll.
    pub fn serving_id(&self, task: Task) -> Result<Option<String>, RegistryError> {
        Ok(self.storage.read_pointer(task)?.0.serving)
    }

    /// The version served now, if any.
    pub fn serving(&self, task: Task) -> Result<Option<Version>, RegistryError> {
        self.serving_id(task)?
            .map(|id| self.version(task, &id))
            .transpose()
    }

    /// The pointer's history, newest last.
    pub fn events(&self, task: Task) -> Result<Vec<Event>, RegistryError> {
        Ok(self.storage.read_pointer(task)?.0.events)
    }

    /// Serves `id` from now on.
    pub fn promote(&self, task: Task, id: &str, reason: &str) -> Result<Version, RegistryError> {
        self.move_pointer(task, reason, |_| Ok((Action::Promote, id.to_string())))
    }

    /// Serves the version that was served before the current one.
    pub fn rollback(&self, task: Task, reason: &str) -> Result<Version, RegistryError> {
        self.move_pointer(task, reason, |pointer| {
            // Promotions push onto a stack and rollbacks pop it, so rolling
            // back twice goes two versions back rather than undoing the first.
            let mut stack: Vec<&str> = Vec::new();
            for event in &pointer.events {
                match event.action {
                    Action::Promote => stack.push(&event.version),
                    Action::Rollback => {
                        stack.pop();
                    }
                }
            }
            stack.pop();
            let previous = stack
                .pop()
                .ok_or(RegistryError::NothingToRollBack { task })?;
            Ok((Action::Rollback, previous.to_string()))
        })
    }

    /// One read-modify-write of the pointer: `choose` says what to serve,
    /// from the pointer as it is now; when someone else moved it meanwhile,
    /// it is read again and `choose` asked again.
    fn move_pointer(
        &self,
        task: Task,
        reason: &str,
        choose: impl Fn(&Pointer) -> Result<(Action, String), RegistryError>,
    ) -> Result<Version, RegistryError> {
        for attempt in 0..POINTER_ATTEMPTS {
            let (mut pointer, tag) = self.storage.read_pointer(task)?;
            let (action, id) = choose(&pointer)?;
            self.check_version(task, &id)?;
            pointer.serving = Some(id.clone());
            pointer.events.push(Event {
                at: Utc::now(),
                action,
                version: id.clone(),
                reason: reason.to_string(),
            });
            match self.storage.replace_pointer(task, &pointer, tag.as_ref())? {
                Replaced::Done => return self.version(task, &id),
                Replaced::Changed => std::thread::sleep(backoff(attempt)),
            }
        }
        Err(RegistryError::Contended {
            task,
            location: self.storage.location().to_string(),
            attempts: POINTER_ATTEMPTS,
        })
    }
}

impl fmt::Display for Registry {
    /// The root as the user named it: a folder or a URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.storage.location())
    }
}

/// A pause that grows with the attempt, jittered by the clock so that
/// promoters who collided try again at different moments.
fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos() % 4_000_000);
    Duration::from_millis(u64::from(attempt.min(20))) + Duration::from_nanos(u64::from(jitter))
}

/// `v3` -> 3.
fn version_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix('v')?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// A new folder named `prefix...` in `parent` (made if needed), which
/// version listings skip: versions are named `v<number>`.
fn hidden_folder_in(parent: &Path, prefix: &str) -> Result<PathBuf, RegistryError> {
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let folder = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(io_error(parent))?;
    Ok(folder.keep())
}

/// Makes a staged folder version `id`: writes its lineage, stamps the id
/// into `config.json`, and flushes every file to disk.
fn seal(staged: &Path, id: &str, lineage: &Lineage) -> Result<(), RegistryError> {
    folder::write_json(&staged.join("lineage.json"), lineage)?;
    stamp_version(&staged.join("config.json"), id)?;
    folder::sync_tree(staged)
}

/// A version from the files of its local folder.
fn read_version(id: &str, path: PathBuf) -> Result<Version, RegistryError> {
    let lineage = read_json(&path.join("lineage.json"))?;
    let metrics_path = path.join("metrics.json");
    let metrics = if metrics_path.is_file() {
        let all: serde_json::Value = read_json(&metrics_path)?;
        all.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.is_number())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Default::default()
    };
    let labels = read_config(&path.join("config.json"))?.labels;
    Ok(Version {
        id: id.to_string(),
        path,
        lineage,
        metrics,
        labels,
    })
}

/// The figure promotion compares, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    MacroF1,
    Loss,
    Perplexity,
}

impl Metric {
    /// The name in `metrics.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::MacroF1 => "macro_f1",
            Metric::Loss => "loss",
            Metric::Perplexity => "perplexity",
        }
    }

    /// Whether a lower figure is the better one.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Loss | Metric::Perplexity)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--metric` that names no [`Metric`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a promotion metric: use accuracy, macro_f1, loss or perplexity")]
pub struct UnknownMetric(pub String);

impl std::str::FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            Metric::Accuracy,
            Metric::MacroF1,
            Metric::Loss,
            Metric::Perplexity,
        ]
        .into_iter()
        .find(|metric| metric.name() == name)
        .ok_or_else(|| UnknownMetric(name.to_string()))
    }
}

/// When a new version may replace the served one: it must beat it on the
/// same evaluation data by `margin` on `metric`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PromotionRule {
    pub metric: Metric,
    pub margin: f64,
}

impl PromotionRule {
    /// The verdict on a candidate's score against the served version's,
    /// with the reason in words.
    pub fn judge(&self, candidate: f64, serving: Option<(&str, f64)>) -> (bool, String) {
        let metric = self.metric;
        let Some((served, score)) = serving else {
            return (
                true,
                format!("first version served ({metric} {candidate:.4})"),
            );
        };
        let gain = if metric.lower_is_better() {
            score - candidate
        } else {
            candidate - score
        };
        let better = gain > self.margin;
        let verdict = if better { "beats" } else { "does not beat" };
        (
            better,
            format!(
                "{metric} {candidate:.4} {verdict} {served}'s {score:.4} by more than {margin}",
                margin = self.margin
            ),
        )
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RegistryError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    parse_json(&text, &path.display().to_string())
}

fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    location: &str,
) -> Result<T, RegistryError> {
    serde_json::from_str(text).map_err(|e| RegistryError::Damaged {
        location: location.to_string(),
        reason: e.to_string(),
    })
}

fn read_config(path: &Path) -> Result<ModelConfig, RegistryError> {
    ModelConfig::read(path).map_err(|error| match error {
        LoadError::Io { path, source } => RegistryError::Io { path, source },
        other => RegistryError::Damaged {
            location: path.display().to_string(),
            reason: other.to_string(),
        },
    })
}

/// Sets `version` in a model folder's `config.json`, so the app shows it.
fn stamp_version(path: &Path, id: &str) -> Result<(), RegistryError> {
    if !path.is_file() {
        return Ok(());
    }
    let config = ModelConfig {
        version: Some(id.to_string()),
        ..read_config(path)?
    };
    folder::write_json(path, &config)
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStore, PutPayload};

    use super::*;
    use crate::store::block_on;

    fn lineage(dataset_hash: &str) -> Lineage {
        Lineage {
            created: Utc::now(),
            dataset: "data/datasets/actors".into(),
            dataset_hash: dataset_hash.into(),
            base_model: "mobilenet-v2-imagenet".into(),
            parameters: serde_json::json!({"epochs": 3}),
            code_revision: "test".into(),
        }
    }

    /// A registry in a bucket in memory, its local copies under `cache`;
    /// the store too, to look at or tamper with.
    fn in_bucket(cache: &Path) -> (Registry, Arc<dyn ObjectStore>) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let bucket = bucket::Bucket::new(
            "memory:///registry".into(),
            store.clone(),
            ObjectPath::from("registry"),
            cache.to_path_buf(),
        );
        let registry = Registry {
            storage: Arc::new(bucket),
        };
        (registry, store)
    }

    /// Runs `check` on a folder registry and on a bucket registry.
    fn on_each_storage(check: impl Fn(&Registry)) {
        let dir = tempfile::tempdir().unwrap();
        check(&Registry::new(dir.path().join("registry")));
        check(&in_bucket(&dir.path().join("cache")).0);
    }

    fn version_ids(registry: &Registry) -> Vec<String> {
        let versions = registry.versions(Task::Actors).unwrap();
        versions.into_iter().map(|v| v.id).collect()
    }

    fn add_version(registry: &Registry, accuracy: f64) -> Version {
        let staged = registry.stage(Task::Actors).unwrap();
        fs::write(staged.path().join("model.safetensors"), b"weights").unwrap();
        fs::write(
            staged.path().join("config.json"),
            r#"{"task": "image-classification", "architecture": "resnet18", "labels": ["a", "b"]}"#,
        )
        .unwrap();
        fs::write(
            staged.path().join("metrics.json"),
            format!(r#"{{"accuracy": {accuracy}, "confusion": [[1, 0], [0, 1]]}}"#),
        )
        .unwrap();
        registry.commit(staged, &lineage("abc")).unwrap()
    }

    #[test]
    fn versions_are_numbered_and_stamped() {
        on_each_storage(|registry| {
            assert!(registry.versions(Task::Actors).unwrap().is_empty());
            let first = add_version(registry, 0.5);
            let second = add_version(registry, 0.75);
            assert_eq!((first.id.as_str(), second.id.as_str()), ("v1", "v2"));
            assert_eq!(second.metrics["accuracy"], 0.75);
            assert!(!second.metrics.contains_key("confusion"), "numbers only");
            assert_eq!(second.labels, ["a", "b"]);
            let config = fs::read_to_string(second.path.join("config.json")).unwrap();
            assert!(config.contains(r#""version": "v2""#), "{config}");
            assert_eq!(version_ids(registry), ["v1", "v2"]);
            assert!(
                registry.serving(Task::Actors).unwrap().is_none(),
                "nothing served until promoted"
            );
        });
    }

    #[test]
    fn a_failed_write_leaves_no_version_behind() {
        on_each_storage(|registry| {
            let write_model = |staged: &Staged| -> io::Result<()> {
                fs::write(staged.path().join("model.safetensors"), b"half")?;
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device",
                ))
            };
            let staged = registry.stage(Task::Actors).unwrap();
            let folder = staged.path().to_path_buf();
            assert!(write_model(&staged).is_err());
            drop(staged);
            assert!(!folder.exists(), "staging removed");
            assert!(registry.versions(Task::Actors).unwrap().is_empty());
        });
    }

    #[test]
    fn promote_and_roll_back_move_the_pointer() {
        on_each_storage(|registry| {
            add_version(registry, 0.5);
            add_version(registry, 0.8);
            add_version(registry, 0.9);
            let err = registry.rollback(Task::Actors, "test").unwrap_err();
            assert!(
                matches!(err, RegistryError::NothingToRollBack { .. }),
                "{err}"
            );
            registry.promote(Task::Actors, "v1", "first").unwrap();
            registry.promote(Task::Actors, "v3", "better").unwrap();
            assert_eq!(registry.serving(Task::Actors).unwrap().unwrap().id, "v3");
            assert_eq!(
                registry.serving_id(Task::Actors).unwrap().as_deref(),
                Some("v3")
            );
            assert_eq!(
                registry.rollback(Task::Actors, "bad outputs").unwrap().id,
                "v1"
            );
            assert_eq!(registry.serving(Task::Actors).unwrap().unwrap().id, "v1");
            let actions: Vec<Action> = registry
                .events(Task::Actors)
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect();
            assert_eq!(
                actions,
                [Action::Promote, Action::Promote, Action::Rollback]
            );
            assert!(
                registry.rollback(Task::Actors, "again").is_err(),
                "v1 was the first served version"
            );
            let err = registry.promote(Task::Actors, "v9", "typo").unwrap_err();
            assert!(err.to_string().contains("no version 'v9'"), "{err}");
            assert!(registry.version(Task::Actors, "../actors").is_err());
            assert!(registry.version(Task::Actors, "v1/../v2").is_err());
        });
    }

    #[test]
    fn concurrent_promoters_lose_no_event() {
        on_each_storage(|registry| {
            add_version(registry, 0.5);
            add_version(registry, 0.6);
            std::thread::scope(|scope| {
                for promoter in 0..8 {
                    let registry = registry.clone();
                    scope.spawn(move || {
                        for round in 0..10 {
                            let id = if (promoter + round) % 2 == 0 {
                                "v1"
                            } else {
                                "v2"
                            };
                            registry.promote(Task::Actors, id, "race").unwrap();
                        }
                    });
                }
            });
            assert_eq!(registry.events(Task::Actors).unwrap().len(), 80);
        });
    }

    #[test]
    fn promotion_needs_a_win_by_the_margin() {
        let rule = PromotionRule {
            metric: Metric::Accuracy,
            margin: 0.01,
        };
        assert!(rule.judge(0.5, None).0, "nothing served yet");
        assert!(rule.judge(0.92, Some(("v1", 0.9))).0);
        let (promote, reason) = rule.judge(0.905, Some(("v1", 0.9)));
        assert!(!promote, "a win inside the margin is not enough");
        assert!(reason.contains("does not beat v1's 0.9000"), "{reason}");
        let loss = PromotionRule {
            metric: Metric::Loss,
            margin: 0.0,
        };
        assert!(loss.judge(0.3, Some(("v1", 0.4))).0);
        assert!(!loss.judge(0.5, Some(("v1", 0.4))).0);
    }

    #[test]
    fn a_damaged_pointer_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        add_version(&registry, 0.5);
        fs::write(dir.path().join("actors/registry.json"), "{not json").unwrap();
        let err = registry.serving(Task::Actors).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");

        let (registry, store) = in_bucket(&dir.path().join("cache"));
        add_version(&registry, 0.5);
        let pointer = ObjectPath::from("registry/actors/registry.json");
        block_on(store.put(&pointer, PutPayload::from_static(b"{not json"))).unwrap();
        let err = registry.serving(Task::Actors).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("memory:///registry/actors/registry.json is damaged"),
            "{message}"
        );
    }

    #[test]
    fn a_bucket_upload_cut_short_is_never_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, store) = in_bucket(&dir.path().join("cache"));
        add_version(&registry, 0.5);
        registry.promote(Task::Actors, "v1", "first").unwrap();
        // What a writer killed mid-upload leaves: its claim and some files.
        for (name, bytes) in [(".claim", &b""[..]), ("model.safetensors", b"wei")] {
            let object = ObjectPath::from(format!("registry/actors/versions/v2/{name}"));
            block_on(store.put(&object, PutPayload::from(bytes.to_vec()))).unwrap();
        }
        assert_eq!(version_ids(&registry), ["v1"]);
        let err = registry.promote(Task::Actors, "v2", "half").unwrap_err();
        assert!(matches!(err, RegistryError::UnknownVersion { .. }), "{err}");
        assert_eq!(
            registry.serving_id(Task::Actors).unwrap().as_deref(),
            Some("v1")
        );
        assert_eq!(add_version(&registry, 0.7).id, "v3", "v2 stays claimed");
    }

    #[test]
    fn a_bucket_version_is_fetched_whole_and_refetched_when_the_bucket_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, store) = in_bucket(&dir.path().join("trainer"));
        add_version(&writer, 0.5);
        writer.promote(Task::Actors, "v1", "first").unwrap();
        // A server on another machine: same bucket, its own cache.
        let reader = Registry {
            storage: Arc::new(bucket::Bucket::new(
                "memory:///registry".into(),
                store.clone(),
                ObjectPath::from("registry"),
                dir.path().join("server"),
            )),
        };
        let served = reader.serving(Task::Actors).unwrap().unwrap();
        assert!(served.path.starts_with(dir.path().join("server")));
        assert_eq!(
            fs::read(served.path.join("model.safetensors")).unwrap(),
            b"weights"
        );
        assert_eq!(served.metrics["accuracy"], 0.5);

        // The bucket emptied and a different v1 written: the copy is stale.
        let all: Vec<_> = block_on(futures::TryStreamExt::try_collect::<Vec<_>>(
            store.list(None),
        ))
        .unwrap();
        for meta in all {
            block_on(store.delete(&meta.location)).unwrap();
        }
        add_version(&writer, 0.9);
        let again = reader.version(Task::Actors, "v1").unwrap();
        assert_eq!(again.metrics["accuracy"], 0.9);
    }
}
