//! `starcast models ...` and `starcast evaluate`: the registry from the
//! command line, and a model's report on labelled photos.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use chrono::NaiveDate;
use starcast_model::folder::ModelFolder;
use starcast_model::hub::local_model;
use starcast_model::text::{
    ADAPTER_CONFIG, AdapterConfig, SentenceEmbedder, load_horoscope_writer,
};
use starcast_model::vision::ClassifierOptions;
use starcast_model::{ModelInfo, ModelKind, load_actor_recognizer};
use starcast_pipeline::hub_push::{DEFAULT_ENDPOINT, HubRepo};
use starcast_pipeline::model_card::{CardFacts, model_card};
use starcast_pipeline::registry::{Lineage, Registry, Task, Version};
use starcast_pipeline::tracking::MlflowServer;
use starcast_train::{
    HoroscopeText, ImageFolder, SkippedPhoto, evaluate_recognizer, evaluate_writer, reading_check,
};

use crate::device::DeviceChoice;
use crate::step_metrics;
use crate::train::horoscope::horoscope_texts;
use crate::train::print_report;
use crate::train::publish::{CODE_REVISION, mirror_in_mlflow};

#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// The model registry: a folder, or `s3://bucket/prefix` shared by
    /// several machines.
    #[arg(
        long,
        env = "STARCAST_REGISTRY",
        default_value = "data/registry",
        value_parser = Registry::open,
        global = true
    )]
    pub registry: Registry,
    /// The task whose versions to work on.
    #[arg(long, default_value_t = Task::Actors, global = true)]
    pub task: Task,
    /// An MLflow server whose model registry mirrors this one: promotion
    /// and rollback move the `@champion` alias of `starcast-<task>`, and
    /// an added version becomes `@challenger` (or `@champion` with --promote).
    #[arg(long, env = "MLFLOW_TRACKING_URI", global = true)]
    pub mlflow: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Every version, oldest first; `*` marks the one served.
    List,
    /// A version's lineage, metrics and files.
    Show { version: String },
    /// Serve a version from now on (running servers swap it in).
    Promote {
        version: String,
        /// Why, for the record.
        #[arg(long, default_value = "promoted by hand")]
        reason: String,
    },
    /// Register a model folder made elsewhere (a student's Colab run, an
    /// earlier export) as the next version; it is checked first as the
    /// server would load it.
    Add {
        folder: PathBuf,
        /// The data it was trained on, for the lineage.
        #[arg(long, default_value = "unknown")]
        dataset: String,
        /// Serve it at once.
        #[arg(long)]
        promote: bool,
    },
    /// Load an actor model folder as the server would and print what it
    /// is; the server runs this on each upload, in a child process with a
    /// deadline and a memory cap.
    Check { folder: PathBuf },
    /// Serve the version that was served before the current one.
    Rollback {
        #[arg(long, default_value = "rolled back by hand")]
        reason: String,
    },
    /// Publish a version to the Hugging Face Hub (needs HF_TOKEN with write
    /// access); `--actors-model hf://user/name` then serves it anywhere.
    Push {
        version: String,
        /// The model repo, created if needed.
        #[arg(long)]
        repo: String,
        /// Create the repo as private.
        #[arg(long)]
        private: bool,
        /// The Hub's address (a mirror, or a server on loopback in tests).
        #[arg(long, env = "HF_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
        endpoint: String,
        #[arg(long, env = "HF_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The Hub repo of the model it was fine-tuned from, for the model
        /// card's `base_model`. A LoRA adapter trained on a local folder
        /// needs it (HuggingFaceTB/SmolLM2-135M-Instruct for the packaged
        /// default): it is written into the pushed adapter_config.json so
        /// that Starcast and PEFT find the base anywhere.
        #[arg(long)]
        base_repo: Option<String>,
        /// The licence the model card states, as the Hub names them
        /// (apache-2.0, mit, ...): the base model's and the data's terms
        /// decide it.
        #[arg(long, default_value = "other")]
        license: String,
    },
}

pub fn models(args: RegistryArgs, command: ModelsCommand) -> anyhow::Result<()> {
    let registry = args.registry;
    let task = args.task;
    let mirror = |id: &str, served: bool| match &args.mlflow {
        Some(url) => mirror_in_mlflow(&MlflowServer::new(url), &registry, task, id, None, served),
        None => Ok(()),
    };
    match command {
        ModelsCommand::List => {
            let serving = registry.serving(task)?.map(|v| v.id);
            let versions = registry.versions(task)?;
            if versions.is_empty() {
                println!("no {task} versions in {registry}: `starcast train {task}` makes one");
            }
            for version in versions {
                let mark = if serving.as_deref() == Some(version.id.as_str()) {
                    '*'
                } else {
                    ' '
                };
                let metrics: Vec<String> = version
                    .metrics
                    .iter()
                    .filter_map(|(k, v)| v.as_f64().map(|v| format!("{k} {v:.4}")))
                    .collect();
                println!(
                    "{mark} {:<5} {}  {}  {}",
                    version.id,
                    version.lineage.created.format("%Y-%m-%d %H:%M"),
                    version.labels.join(", "),
                    metrics.join(", ")
                );
            }
        }
        ModelsCommand::Show { version } => {
            let version = registry.version(task, &version)?;
            println!("{}", serde_json::to_string_pretty(&version)?);
        }
        ModelsCommand::Promote { version, reason } => {
            let version = registry.promote(task, &version, &reason)?;
            println!("serving {task} {}", version.id);
            mirror(&version.id, true)?;
        }
        ModelsCommand::Add {
            folder,
            dataset,
            promote,
        } => {
            let version = add(&registry, task, &folder, dataset)?;
            println!("registered {task} version {} in {registry}", version.id);
            if promote {
                registry.promote(task, &version.id, "registered and promoted by hand")?;
                println!("serving {task} {}", version.id);
            }
            mirror(&version.id, promote)?;
        }
        ModelsCommand::Check { folder } => {
            let info = check_loads(Task::Actors, &folder)?;
            println!("{}", serde_json::to_string(&info)?);
        }
        ModelsCommand::Rollback { reason } => {
            let version = registry.rollback(task, &reason)?;
            println!("serving {task} {} again", version.id);
            mirror(&version.id, true)?;
        }
        ModelsCommand::Push {
            version,
            repo,
            private,
            endpoint,
            token,
            base_repo,
            license,
        } => {
            let version = registry.version(task, &version)?;
            let mut written = adapter_config_for_hub(&version.path, base_repo.as_deref())?;
            let hub = HubRepo::new(&endpoint, &repo, token, private)?;
            let base_model =
                base_repo.or_else(|| base_on_hub(&version.path, &version.lineage.base_model));
            let facts = CardFacts {
                repo: &repo,
                task,
                base_model: base_model.as_deref(),
                license: &license,
            };
            written.push(("README.md", model_card(&version, &facts).into_bytes()));
            let summary = format!("starcast {task} {}", version.id);
            let commit = hub.push_folder(&version.path, &summary, &written)?;
            println!("pushed {task} {} to {repo}: {commit}", version.id);
            let option = if task == Task::Horoscope {
                "--horoscope-model"
            } else {
                "--actors-model"
            };
            println!("serve it with {option} hf://{repo}");
        }
    }
    Ok(())
}

/// What a `task` model folder is, loaded as the server would load it.
fn check_loads(task: Task, folder: &Path) -> anyhow::Result<ModelInfo> {
    let loaded = match task {
        Task::Actors => load_actor_recognizer(folder, &ClassifierOptions::on(Device::Cpu))
            .map(|model| model.info().clone()),
        Task::Horoscope => {
            load_horoscope_writer(folder, &Device::Cpu).map(|writer| writer.info().clone())
        }
    };
    loaded.with_context(|| format!("{} does not load as the {task} model", folder.display()))
}

/// Copies a model folder that loads into the registry as a new version.
fn add(registry: &Registry, task: Task, folder: &Path, dataset: String) -> anyhow::Result<Version> {
    let info = check_loads(task, folder)?;
    let staged = registry.stage(task)?;
    copy_folder(folder, staged.path())?;
    let lineage = Lineage {
        created: chrono::Utc::now(),
        dataset,
        dataset_hash: String::new(),
        // All a folder from elsewhere says of its base: the network it is.
        base_model: info.architecture,
        parameters: serde_json::json!({}),
        code_revision: CODE_REVISION.to_string(),
    };
    Ok(registry.commit(staged, &lineage)?)
}

fn copy_folder(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(from).with_context(|| format!("could not read {}", from.display()))?
    {
        let path = entry?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_folder(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)
                .with_context(|| format!("could not copy {}", path.display()))?;
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The model: a classifier, face-gallery or horoscope model folder (a
    /// registry version's included), a weights file or `hf://user/repo`.
    #[arg(required_unless_present = "served")]
    pub model: Option<PathBuf>,
    /// Instead of MODEL, the version the registry serves for this task
    /// (`actors` or `horoscope`): what the daily loop checks against the
    /// photos users flagged.
    #[arg(long, conflicts_with = "model")]
    pub served: Option<Task>,
    /// The registry --served reads: a folder or `s3://bucket/prefix`.
    #[arg(long, default_value = "data/registry", value_parser = Registry::open)]
    pub registry: Registry,
    /// Actor models: labelled photos in `<actor>/<photo>` folders.
    /// Horoscope models: processed horoscopes, `.csv` or `.parquet`, local or
    /// `s3://` (`starcast process horoscopes --output` writes them).
    #[arg(long)]
    pub data: PathBuf,
    /// Horoscope models: how many of the file's last rows are scored for perplexity.
    #[arg(long, default_value_t = 20)]
    pub held_out: usize,
    /// Horoscope models: horoscopes generated per sampling setting.
    #[arg(long, default_value_t = 6)]
    pub samples: usize,
    /// Horoscope models: the sentence-embedding model that measures how
    /// much the outputs differ (scripts/fetch-defaults.sh data --with-evaluation).
    #[arg(long, default_value = "data/models/all-minilm-l6-v2")]
    pub embedder: PathBuf,
    /// Horoscope models: the days of the reading check (the day's horoscope
    /// of every sign on each, from the held-out texts' last date on); 0
    /// skips it.
    #[arg(long, default_value_t = 2)]
    pub reading_days: u32,
    /// Horoscope models: the (temperature:top_p) pairs to sample with.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.6:0.7,0.9:0.9,1.2:0.95"
    )]
    pub settings: Vec<String>,
    /// Actor models: skip and count the photos of actors the model doesn't
    /// know instead of refusing them all (a flag may name anyone; the
    /// daily loop's check of flagged photos passes this).
    #[arg(long)]
    pub skip_unknown_actors: bool,
    /// Where the evaluated model runs (the sentence embedder of the
    /// diversity figure stays on the CPU).
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as an HTML page.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// A LoRA adapter's config as pushed: one naming its local base folder
/// names `base_repo` instead, which whoever downloads it can fetch. Other
/// models push as they are.
fn adapter_config_for_hub(
    folder: &Path,
    base_repo: Option<&str>,
) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let Some(mut config) = AdapterConfig::in_folder(folder)? else {
        return Ok(Vec::new());
    };
    if !Path::new(&config.base_model_name_or_path).is_absolute() {
        return Ok(Vec::new());
    }
    let repo = base_repo.with_context(|| {
        format!(
            "this adapter's base model is {}, a folder on this machine that whoever downloads the adapter lacks: pass --base-repo USER/NAME, the Hub repo of that model (HuggingFaceTB/SmolLM2-135M-Instruct for the packaged default)",
            config.base_model_name_or_path
        )
    })?;
    config.base_model_name_or_path = repo.to_string();
    Ok(vec![(ADAPTER_CONFIG, serde_json::to_vec_pretty(&config)?)])
}

/// The Hub repo a version was fine-tuned from, when its record names one:
/// an adapter's base given by repo, or a base model fetched as `hf://`.
fn base_on_hub(folder: &Path, base_model: &str) -> Option<String> {
    let adapter_base = AdapterConfig::in_folder(folder)
        .ok()
        .flatten()
        .map(|config| config.base_model_name_or_path);
    [adapter_base.as_deref(), Some(base_model)]
        .into_iter()
        .flatten()
        .find_map(|named| {
            let repo = named.strip_prefix("hf://").unwrap_or(named);
            let repo = repo.split('@').next().unwrap_or(repo);
            let is_repo = repo.split('/').count() == 2
                && !repo.starts_with(['.', '/'])
                && !Path::new(named).exists();
            is_repo.then(|| repo.to_string())
        })
}

/// The model `evaluate` was asked about: MODEL, or the registry's served version.
fn evaluated_model(args: &EvaluateArgs) -> anyhow::Result<PathBuf> {
    match (&args.model, &args.served) {
        (Some(model), _) => Ok(local_model(model)?),
        (None, Some(task)) => {
            let registry = &args.registry;
            let version = registry.serving(*task)?.with_context(|| {
                format!(
                    "the registry at {registry} serves no {task} version: promote one with `starcast models promote`, or name a model"
                )
            })?;
            Ok(version.path)
        }
        (None, None) => anyhow::bail!("name a model to evaluate, or pass --served TASK"),
    }
}

pub fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let path = evaluated_model(&args)?;
    let is_text =
        ModelFolder::open(&path).is_ok_and(|f| f.config.task == ModelKind::TextGeneration);
    if is_text {
        return evaluate_text(&args, &path, &device);
    }
    let model = load_actor_recognizer(&path, &ClassifierOptions::on(device))
        .with_context(|| format!("could not load the actor model {}", path.display()))?;
    let data = ImageFolder::scan(&args.data)?;
    let mut photos: Vec<(PathBuf, String)> = data
        .samples
        .iter()
        .map(|(path, class)| (path.clone(), data.classes[*class].clone()))
        .collect();
    let mut unknown = Vec::new();
    if args.skip_unknown_actors {
        let labels = &model.info().labels;
        let (known, others) = photos
            .into_iter()
            .partition(|(_, actor)| labels.contains(actor));
        (photos, unknown) = (known, others);
    }
    if photos.is_empty() && !unknown.is_empty() {
        println!(
            "nothing to evaluate: all {} photos show actors the model doesn't know",
            unknown.len()
        );
        return step_metrics::report(&[("photos", 0.0), ("photos_skipped", unknown.len() as f64)]);
    }
    let (report, mut skipped) = evaluate_recognizer(model.as_ref(), &photos)?;
    skipped.extend(unknown.into_iter().map(|(path, actor)| SkippedPhoto {
        path,
        reason: format!("the model doesn't know {actor}"),
    }));
    for photo in &skipped {
        eprintln!("skipped {}: {}", photo.path.display(), photo.reason);
    }
    step_metrics::report(&[
        ("accuracy", report.accuracy),
        ("macro_f1", report.macro_f1),
        ("photos", report.examples as f64),
        ("photos_skipped", skipped.len() as f64),
    ])?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    write_html(&args, |title| report.html(title))
}

/// `T:P` as a (temperature, top-p) pair.
fn setting(text: &str) -> anyhow::Result<(f32, f32)> {
    let parsed = text
        .split_once(':')
        .and_then(|(t, p)| Some((t.trim().parse().ok()?, p.trim().parse().ok()?)));
    parsed.with_context(|| {
        format!("'{text}' is not a setting: write temperature:top_p, e.g. 0.9:0.9")
    })
}

/// The last `count` horoscopes of a processed file.
fn held_out(location: &Path, count: usize) -> anyhow::Result<Vec<HoroscopeText>> {
    let mut texts = horoscope_texts(&location.to_string_lossy())?.texts;
    let skip = texts.len().saturating_sub(count);
    Ok(texts.split_off(skip))
}

fn evaluate_text(args: &EvaluateArgs, path: &Path, device: &Device) -> anyhow::Result<()> {
    let settings = args
        .settings
        .iter()
        .map(|s| setting(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let held_out = held_out(&args.data, args.held_out)?;
    let writer = load_horoscope_writer(path, device)
        .with_context(|| format!("could not load the horoscope model {}", path.display()))?;
    let date = held_out
        .last()
        .map_or_else(|| chrono::Utc::now().date_naive(), |h| h.date);
    let embedder = match SentenceEmbedder::load(&args.embedder) {
        Ok(embedder) => Some(embedder),
        Err(error) => {
            eprintln!(
                "diversity is not measured: {error} (scripts/fetch-defaults.sh data --with-evaluation fetches the model)"
            );
            None
        }
    };
    let mut report = evaluate_writer(
        writer.as_ref(),
        embedder.as_ref(),
        &held_out,
        &settings,
        args.samples,
        date,
    )?;
    let days: Vec<NaiveDate> = date.iter_days().take(args.reading_days as usize).collect();
    if !days.is_empty() {
        let language = writer.info().language.unwrap_or_default();
        report.reading = Some(reading_check(writer.as_ref(), language, &days));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "perplexity {:.2} on {} held-out horoscopes ({} tokens)",
            report.perplexity, report.held_out_texts, report.held_out_tokens
        );
        println!("temperature  top-p  300-500 chars  distinct-2  diversity  mean time  failures");
        for s in &report.settings {
            println!(
                "{:>11}  {:>5}  {:>12.0}%  {:>10.3}  {:>9}  {:>7.2} s  {:>8}",
                s.temperature,
                s.top_p,
                s.within_length * 100.0,
                s.distinct_2,
                s.diversity.map_or("-".to_string(), |d| format!("{d:.3}")),
                s.mean_seconds,
                s.failures
            );
        }
        if let Some(reading) = &report.reading {
            println!(
                "reading check ({}): {} of {} day's horoscopes pass",
                reading.language, reading.passed, reading.samples
            );
            for (criterion, count) in &reading.failed {
                println!("  {count} fail {criterion:?}");
            }
            for (text, failed) in &reading.examples {
                println!("  {failed:?}: {text}");
            }
        }
    }
    write_html(args, |title| report.html(title))
}

/// Writes the report page when `--html` asks for one.
fn write_html(args: &EvaluateArgs, page: impl Fn(&str) -> String) -> anyhow::Result<()> {
    if let Some(html) = &args.html {
        let model = match (&args.model, &args.served) {
            (Some(model), _) => model.display().to_string(),
            (None, Some(task)) => format!("the served {task} model"),
            (None, None) => "the served model".into(),
        };
        let title = format!("{model} on {}", args.data.display());
        std::fs::write(html, page(&title))
            .with_context(|| format!("could not write {}", html.display()))?;
        eprintln!("report written to {}", html.display());
    }
    Ok(())
}
