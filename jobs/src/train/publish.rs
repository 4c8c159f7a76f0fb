//! What happens to a trained model, whichever trainer made it: written to
//! `--out`, or registered as the task's next version and served when it
//! beats the served one on the same held-out data; then, if asked, the run
//! is logged to MLflow and the version mirrored in MLflow's model registry.
//! Each trainer brings its own writing and scoring.

use std::path::{Path, PathBuf};

use anyhow::Context;
use starcast_pipeline::dataset::fingerprint;
use starcast_pipeline::registry::{Lineage, PromotionRule, Registry, Task, Version};
use starcast_pipeline::tracking::{CHALLENGER, CHAMPION, MlflowServer};

/// The version of the code that trained a model.
pub const CODE_REVISION: &str = concat!("starcast ", env!("CARGO_PKG_VERSION"));

/// Where a trained model goes and who hears of it: both `train` commands.
#[derive(Debug, clap::Args)]
pub struct Publish {
    /// Write the model folder here instead of registering a new version.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The model registry: a folder, or `s3://bucket/prefix` shared with
    /// the servers.
    #[arg(long, env = "STARCAST_REGISTRY", default_value = "data/registry", value_parser = Registry::open)]
    pub registry: Registry,
    /// Register the new version without serving it, whatever its score.
    #[arg(long)]
    pub no_promote: bool,
    /// How much better than the served version the new one must be (on
    /// --metric for actors; in held-out perplexity for horoscopes).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// An MLflow tracking server to log the run to: options, metrics per
    /// epoch, final figures and the model folder's files. A registered
    /// version also becomes a version of MLflow's model `starcast-<task>`,
    /// aliased `@champion` when served and `@challenger` when not.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub mlflow: Option<String>,
}

/// Where the training data and the base model came from, for the lineage.
pub struct Origin {
    /// The dataset as the user named it (a folder or a URL).
    pub dataset: String,
    /// What [`fingerprint`] or the records' hash says of it.
    pub dataset_hash: String,
    pub base_model: String,
    /// The training options, as given.
    pub parameters: serde_json::Value,
}

impl Origin {
    /// The origin of a model trained on a photo folder.
    pub fn photos(
        dataset: &Path,
        base_model: &Path,
        options: &impl serde::Serialize,
    ) -> anyhow::Result<Self> {
        Ok(Origin {
            dataset: dataset.display().to_string(),
            dataset_hash: fingerprint(dataset)
                .with_context(|| format!("could not read {}", dataset.display()))?,
            base_model: base_model.display().to_string(),
            parameters: serde_json::to_value(options)?,
        })
    }
}

/// How the served version compares with a new one.
pub enum Baseline {
    /// Nothing is served: the new version is the first.
    Nothing,
    /// The served model's score on the new version's held-out data.
    Scored { name: String, score: f64 },
    /// The two can't be compared (say why, and what to do).
    Incomparable(String),
}

/// A trainer's side of promotion: the new version's score and the served
/// model's, on the same held-out data and by the rule's metric.
pub trait Scoring {
    fn candidate(&self, version: &Version) -> anyhow::Result<f64>;
    fn baseline(&self, served: Option<&Version>, version: &Version) -> anyhow::Result<Baseline>;
}

/// What the MLflow run of a training records.
pub struct Tracked<'a> {
    pub experiment: &'a str,
    pub parameters: Vec<(String, String)>,
    /// Each epoch's figures, by epoch number.
    pub epochs: Vec<(usize, Vec<(&'static str, f64)>)>,
    /// The final figures, logged at the best epoch.
    pub best_epoch: usize,
    pub figures: Vec<(&'static str, f64)>,
    /// The model folder's files logged as artifacts, those it has.
    pub files: &'static [&'static str],
}

/// Training options as MLflow parameters: each field's value as text.
pub fn mlflow_parameters(options: &impl serde::Serialize) -> anyhow::Result<Vec<(String, String)>> {
    Ok(serde_json::to_value(options)?
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.to_string().trim_matches('"').to_string()))
        .collect())
}

/// One trained model on its way out.
pub struct Release<'a, W> {
    pub task: Task,
    pub origin: Origin,
    /// Writes the model folder into the given (empty) folder.
    pub write: W,
    pub rule: PromotionRule,
    pub scoring: &'a dyn Scoring,
    pub tracked: Tracked<'a>,
}

/// Writes the model (to `--out`, or as the registry's next version, served
/// if it wins), then logs the run to MLflow if asked.
pub fn publish<W>(publish: &Publish, release: Release<'_, W>) -> anyhow::Result<()>
where
    W: Fn(&Path) -> anyhow::Result<()>,
{
    let registry = &publish.registry;
    let (folder, version) = match &publish.out {
        Some(out) => {
            (release.write)(out)?;
            println!("model written to {}", out.display());
            (out.clone(), None)
        }
        None => {
            let version = register(registry, &release)?;
            let served = !publish.no_promote && promote_if_better(registry, &release, &version)?;
            (version.path.clone(), Some((version.id, served)))
        }
    };
    let Some(url) = &publish.mlflow else {
        return Ok(());
    };
    let server = MlflowServer::new(url);
    let tracked = &release.tracked;
    let id = version.as_ref().map(|(id, _)| id.as_str());
    let run_id = log_to_mlflow(&server, tracked, &folder, id).with_context(|| {
        format!(
            "the model is saved in {}, but logging the run to MLflow failed",
            folder.display()
        )
    })?;
    println!(
        "logged to MLflow at {url}, experiment {}",
        tracked.experiment
    );
    if let Some((id, served)) = version {
        mirror_in_mlflow(&server, registry, release.task, &id, Some(&run_id), served)?;
    }
    Ok(())
}

/// Mirrors registry version `id` in MLflow's model registry as
/// `starcast-<task>`, `@champion` if it is `served`, else `@challenger`.
/// Its source is the version's URL in a bucket registry; MLflow takes no
/// local path, so a folder registry's version points at its training run
/// (`run_id`), or at a run made now that holds its small files.
pub fn mirror_in_mlflow(
    server: &MlflowServer,
    registry: &Registry,
    task: Task,
    id: &str,
    run_id: Option<&str>,
    served: bool,
) -> anyhow::Result<()> {
    let model = format!("starcast-{task}");
    let failed = || format!("the registry has {task} {id}, but mirroring it in MLflow failed");
    let location = registry.version_location(task, id)?;
    let (source, run_id) = match run_id {
        _ if location.contains("://") => (location, run_id.map(String::from)),
        Some(run_id) => (format!("runs:/{run_id}/"), Some(run_id.to_string())),
        None => {
            let run_id = registration_run(server, registry, task, id).with_context(failed)?;
            (format!("runs:/{run_id}/"), Some(run_id))
        }
    };
    let number = server
        .mirror(&model, id, &source, run_id.as_deref(), served)
        .with_context(failed)?;
    let alias = if served { CHAMPION } else { CHALLENGER };
    println!("MLflow model {model} version {number} ({id}) is @{alias}");
    Ok(())
}

/// Writes the model as the registry's next version of its task.
fn register<W>(registry: &Registry, release: &Release<'_, W>) -> anyhow::Result<Version>
where
    W: Fn(&Path) -> anyhow::Result<()>,
{
    let staged = registry.stage(release.task)?;
    (release.write)(staged.path())?;
    let origin = &release.origin;
    let lineage = Lineage {
        created: chrono::Utc::now(),
        dataset: origin.dataset.clone(),
        dataset_hash: origin.dataset_hash.clone(),
        base_model: origin.base_model.clone(),
        parameters: origin.parameters.clone(),
        code_revision: CODE_REVISION.to_string(),
    };
    let version = registry.commit(staged, &lineage)?;
    println!(
        "registered {} version {} in {registry}",
        release.task, version.id
    );
    Ok(version)
}

/// A run in the experiment `starcast-registry` that records version `id`
/// (its lineage as parameters, its small files): the source MLflow gets
/// for a version trained without tracking.
fn registration_run(
    server: &MlflowServer,
    registry: &Registry,
    task: Task,
    id: &str,
) -> anyhow::Result<String> {
    let version = registry.version(task, id)?;
    let lineage = &version.lineage;
    let parameters = [
        ("registry", registry.to_string()),
        ("registry_version", id.to_string()),
        ("dataset", lineage.dataset.clone()),
        ("base_model", lineage.base_model.clone()),
        ("code_revision", lineage.code_revision.clone()),
    ]
    .map(|(key, value)| (key.to_string(), value));
    let run = server.start_run("starcast-registry", &format!("{task} {id}"), &parameters)?;
    for file in ["config.json", "metrics.json", "lineage.json"] {
        let path = version.path.join(file);
        if path.is_file() {
            run.log_artifact(&path)?;
        }
    }
    let run_id = run.run_id.clone();
    run.finish(true)?;
    Ok(run_id)
}

/// Serves the new version if it beats the served one by the rule's
/// margin; says whether it does.
fn promote_if_better<W>(
    registry: &Registry,
    release: &Release<'_, W>,
    version: &Version,
) -> anyhow::Result<bool> {
    let candidate = release.scoring.candidate(version)?;
    let served = registry.serving(release.task)?;
    let baseline = match release.scoring.baseline(served.as_ref(), version)? {
        Baseline::Nothing => None,
        Baseline::Scored { name, score } => Some((name, score)),
        Baseline::Incomparable(why) => {
            println!("not served: {why}");
            return Ok(false);
        }
    };
    let (promote, reason) = release.rule.judge(
        candidate,
        baseline
            .as_ref()
            .map(|(name, score)| (name.as_str(), *score)),
    );
    if promote {
        registry.promote(release.task, &version.id, &reason)?;
        println!("serving {}: {reason}", version.id);
    } else {
        println!("not served: {reason}");
    }
    Ok(promote)
}

/// One MLflow run: the parameters, each epoch's figures, the final ones,
/// and the model folder's small files. Returns the run's id.
fn log_to_mlflow(
    server: &MlflowServer,
    tracked: &Tracked,
    folder: &Path,
    version: Option<&str>,
) -> anyhow::Result<String> {
    let mut parameters = tracked.parameters.clone();
    if let Some(version) = version {
        parameters.push(("registry_version".into(), version.to_string()));
    }
    let run = server.start_run(
        tracked.experiment,
        version.unwrap_or("trained"),
        &parameters,
    )?;
    for (epoch, figures) in &tracked.epochs {
        run.log_metrics(*epoch, figures)?;
    }
    run.log_metrics(tracked.best_epoch, &tracked.figures)?;
    for file in tracked.files {
        let path = folder.join(file);
        if path.is_file() {
            run.log_artifact(&path)?;
        }
    }
    let run_id = run.run_id.clone();
    run.finish(true)?;
    Ok(run_id)
}
