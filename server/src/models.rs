//! `starcast models ...` and `starcast evaluate`: the registry from the
//! command line, and a model's report on labelled photos.

use std::path::PathBuf;

use anyhow::Context;
use starcast_model::hub::local_model;
use starcast_model::load_actor_recognizer;
use starcast_model::vision::ClassifierOptions;
use starcast_pipeline::hub_push::{DEFAULT_ENDPOINT, HubRepo};
use starcast_pipeline::registry::Registry;
use starcast_train::{ImageFolder, evaluate_recognizer};

use crate::train::{ACTORS_TASK, print_report};

#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// The model registry.
    #[arg(
        long,
        env = "STARCAST_REGISTRY",
        default_value = "data/registry",
        global = true
    )]
    pub registry: PathBuf,
    /// The task whose versions to work on.
    #[arg(long, default_value = ACTORS_TASK, global = true)]
    pub task: String,
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
    },
}

pub fn models(args: RegistryArgs, command: ModelsCommand) -> anyhow::Result<()> {
    let registry = Registry::new(&args.registry);
    let task = args.task.as_str();
    match command {
        ModelsCommand::List => {
            let serving = registry.serving(task)?.map(|v| v.id);
            let versions = registry.versions(task)?;
            if versions.is_empty() {
                println!(
                    "no {task} versions in {}: `starcast train {task}` makes one",
                    registry.root().display()
                );
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
            println!("serving {task} {} ({})", version.id, version.path.display());
        }
        ModelsCommand::Rollback { reason } => {
            let version = registry.rollback(task, &reason)?;
            println!("serving {task} {} again", version.id);
        }
        ModelsCommand::Push {
            version,
            repo,
            private,
            endpoint,
            token,
        } => {
            let version = registry.version(task, &version)?;
            let hub = HubRepo::new(&endpoint, &repo, token, private)?;
            let summary = format!("starcast {task} {}", version.id);
            let commit = hub.push_folder(&version.path, &summary)?;
            println!("pushed {task} {} to {repo}: {commit}", version.id);
            println!("serve it with --actors-model hf://{repo}");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The actor model: a classifier or face-gallery folder (a registry
    /// version's included), a weights file or `hf://user/repo`.
    pub model: PathBuf,
    /// Labelled photos: `<actor>/<photo>` folders.
    #[arg(long)]
    pub data: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as an HTML page.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let path = local_model(&args.model)?;
    let model = load_actor_recognizer(&path, &ClassifierOptions::default())
        .with_context(|| format!("could not load the actor model {}", args.model.display()))?;
    let data = ImageFolder::scan(&args.data)?;
    let photos: Vec<(PathBuf, String)> = data
        .samples
        .iter()
        .map(|(path, class)| (path.clone(), data.classes[*class].clone()))
        .collect();
    let (report, skipped) = evaluate_recognizer(model.as_ref(), &photos)?;
    for photo in &skipped {
        eprintln!("skipped {}: {}", photo.path.display(), photo.reason);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if let Some(html) = &args.html {
        let title = format!("{} on {}", args.model.display(), args.data.display());
        std::fs::write(html, report.html(&title))
            .with_context(|| format!("could not write {}", html.display()))?;
        eprintln!("report written to {}", html.display());
    }
    Ok(())
}
