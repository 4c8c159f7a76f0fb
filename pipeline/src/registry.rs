//! The model registry: every trained model is a numbered version (a model
//! folder plus its lineage), and one version per task is the one served.
//!
//! ```text
//! <root>/<task>/versions/v1/      config.json, model.safetensors, metrics.json, lineage.json, ...
//! <root>/<task>/registry.json     {"serving": "v1", "events": [...]}
//! ```
//!
//! A version is written into a hidden staging folder and renamed into
//! place only when every file is on disk, and `registry.json` is replaced
//! by a rename, so the registry never points at a half-written model.
//! Moving the pointer holds `<task>/registry.lock`, so two promoters (two
//! processes, or two threads) can't lose each other's event.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use starcast_api::Task;
use starcast_model::folder::{LoadError, ModelConfig};

use crate::durable;

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
    #[error(
        "{path} is damaged ({reason}): restore it from a backup or delete it to start the registry afresh"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "the {task} registry has no version '{version}': `starcast models list --task {task}` shows the versions"
    )]
    UnknownVersion { task: Task, version: String },
    #[error("the {task} registry has no earlier serving version to roll back to")]
    NothingToRollBack { task: Task },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A registry rooted at a folder (`data/registry` by default).
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
}

/// A version being written: a hidden folder under `versions/`.
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

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Registry { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn task_dir(&self, task: Task) -> PathBuf {
        self.root.join(task.as_str())
    }

    /// The file the server watches to know what to serve.
    pub fn pointer_path(&self, task: Task) -> PathBuf {
        self.task_dir(task).join("registry.json")
    }

    /// A fresh staging folder for a new version of `task`.
    pub fn stage(&self, task: Task) -> Result<Staged, RegistryError> {
        let versions = self.task_dir(task).join("versions");
        fs::create_dir_all(&versions).map_err(io_error(&versions))?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&versions)
            .map_err(io_error(&versions))?;
        Ok(Staged {
            task,
            path: staging.keep(),
        })
    }

    /// Makes a staged folder the next version: writes its lineage, flushes
    /// every file to disk, stamps the version into `config.json`, then
    /// renames it into place. Nothing is served until it is promoted.
    pub fn commit(&self, staged: Staged, lineage: &Lineage) -> Result<Version, RegistryError> {
        let versions = self.task_dir(staged.task).join("versions");
        let id = format!("v{}", self.last_number(staged.task)? + 1);
        write_json(&staged.path.join("lineage.json"), lineage)?;
        stamp_version(&staged.path.join("config.json"), &id)?;
        sync_tree(&staged.path)?;
        let target = versions.join(&id);
        fs::rename(&staged.path, &target).map_err(io_error(&target))?;
        sync_dir(&versions)?;
        self.version(staged.task, &id)
    }

    fn last_number(&self, task: Task) -> Result<u64, RegistryError> {
        Ok(self
            .version_ids(task)?
            .iter()
            .filter_map(|id| id[1..].parse::<u64>().ok())
            .max()
            .unwrap_or(0))
    }

    fn version_ids(&self, task: Task) -> Result<Vec<String>, RegistryError> {
        let versions = self.task_dir(task).join("versions");
        if !versions.is_dir() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<(u64, String)> = fs::read_dir(&versions)
            .map_err(io_error(&versions))?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let number = name.strip_prefix('v')?.parse::<u64>().ok()?;
                Some((number, name))
            })
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    /// Every version of `task`, oldest first.
    pub fn versions(&self, task: Task) -> Result<Vec<Version>, RegistryError> {
        self.version_ids(task)?
            .iter()
            .map(|id| self.version(task, id))
            .collect()
    }

    /// One version by id (`v3`).
    pub fn version(&self, task: Task, id: &str) -> Result<Version, RegistryError> {
        let path = self.task_dir(task).join("versions").join(id);
        if id.starts_with('.') || id.contains('/') || !path.is_dir() {
            return Err(RegistryError::UnknownVersion {
                task,
                version: id.to_string(),
            });
        }
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

    fn pointer(&self, task: Task) -> Result<Pointer, RegistryError> {
        let path = self.pointer_path(task);
        if !path.is_file() {
            return Ok(Pointer::default());
        }
        read_json(&path)
    }

    /// The version served now, if any.
    pub fn serving(&self, task: Task) -> Result<Option<Version>, RegistryError> {
        self.pointer(task)?
            .serving
            .map(|id| self.version(task, &id))
            .transpose()
    }

    /// The pointer's history, newest last.
    pub fn events(&self, task: Task) -> Result<Vec<Event>, RegistryError> {
        Ok(self.pointer(task)?.events)
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

    /// Holds the task's pointer for one read-modify-write; released when
    /// the file is dropped (or its process dies).
    fn lock(&self, task: Task) -> Result<fs::File, RegistryError> {
        let dir = self.task_dir(task);
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

    /// One read-modify-write of the pointer under the task's lock: `choose`
    /// says what to serve, from the pointer as it is now.
    fn move_pointer(
        &self,
        task: Task,
        reason: &str,
        choose: impl FnOnce(&Pointer) -> Result<(Action, String), RegistryError>,
    ) -> Result<Version, RegistryError> {
        let _lock = self.lock(task)?;
        let mut pointer = self.pointer(task)?;
        let (action, id) = choose(&pointer)?;
        let version = self.version(task, &id)?;
        pointer.serving = Some(id.clone());
        pointer.events.push(Event {
            at: Utc::now(),
            action,
            version: id,
            reason: reason.to_string(),
        });
        write_json(&self.pointer_path(task), &pointer)?;
        Ok(version)
    }
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
    serde_json::from_str(&text).map_err(|e| RegistryError::Damaged {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes beside the target, flushes, then renames over it.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RegistryError> {
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

fn read_config(path: &Path) -> Result<ModelConfig, RegistryError> {
    ModelConfig::read(path).map_err(|error| match error {
        LoadError::Io { path, source } => RegistryError::Io { path, source },
        other => RegistryError::Damaged {
            path: path.to_path_buf(),
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
    write_json(path, &config)
}

fn sync_tree(dir: &Path) -> Result<(), RegistryError> {
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

fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    durable::sync_dir(dir).map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        assert!(registry.versions(Task::Actors).unwrap().is_empty());
        let first = add_version(&registry, 0.5);
        let second = add_version(&registry, 0.75);
        assert_eq!((first.id.as_str(), second.id.as_str()), ("v1", "v2"));
        assert_eq!(second.metrics["accuracy"], 0.75);
        assert!(!second.metrics.contains_key("confusion"), "numbers only");
        assert_eq!(second.labels, ["a", "b"]);
        let config = fs::read_to_string(second.path.join("config.json")).unwrap();
        assert!(config.contains(r#""version": "v2""#), "{config}");
        let ids: Vec<String> = registry
            .versions(Task::Actors)
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(ids, ["v1", "v2"]);
        assert!(
            registry.serving(Task::Actors).unwrap().is_none(),
            "nothing served until promoted"
        );
    }

    #[test]
    fn a_failed_write_leaves_no_version_behind() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        let write_model = |staged: &Staged| -> io::Result<()> {
            fs::write(staged.path().join("model.safetensors"), b"half")?;
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ))
        };
        let staged = registry.stage(Task::Actors).unwrap();
        assert!(write_model(&staged).is_err());
        drop(staged);
        let versions = dir.path().join("actors/versions");
        assert_eq!(
            fs::read_dir(&versions).unwrap().count(),
            0,
            "staging removed"
        );
        assert!(registry.versions(Task::Actors).unwrap().is_empty());
    }

    #[test]
    fn promote_and_roll_back_move_the_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        add_version(&registry, 0.5);
        add_version(&registry, 0.8);
        add_version(&registry, 0.9);
        let err = registry.rollback(Task::Actors, "test").unwrap_err();
        assert!(
            matches!(err, RegistryError::NothingToRollBack { .. }),
            "{err}"
        );
        registry.promote(Task::Actors, "v1", "first").unwrap();
        registry.promote(Task::Actors, "v3", "better").unwrap();
        assert_eq!(registry.serving(Task::Actors).unwrap().unwrap().id, "v3");
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
    }

    #[test]
    fn concurrent_promoters_lose_no_event() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        add_version(&registry, 0.5);
        add_version(&registry, 0.6);
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
        fs::write(registry.pointer_path(Task::Actors), "{not json").unwrap();
        let err = registry.serving(Task::Actors).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
