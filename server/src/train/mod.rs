//! `starcast train actors`: fine-tune the actor classifier on a photo
//! dataset, register it as a new version, and serve it when it beats the
//! version served now. `starcast train horoscope` does the same for the
//! horoscope language model.

pub mod horoscope;

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use starcast_model::hub::local_model;
use starcast_model::vision::{ClassifierOptions, ImageClassifier, read_weights};
use starcast_model::{ActorRecognizer, load_actor_recognizer};
use starcast_pipeline::dataset::fingerprint;
use starcast_pipeline::registry::{Lineage, PromotionRule, Registry, Version};
use starcast_pipeline::tracking::{MlflowRun, MlflowServer};
use starcast_train::{
    ClassificationReport, EpochRecord, ImageFolder, Method, Progress, TrainOptions,
    evaluate_recognizer, fine_tune, stratified_split, write_gallery,
};

use crate::device::DeviceChoice;
use crate::step_metrics;

/// The version of the code that trained a model.
pub const CODE_REVISION: &str = concat!("starcast ", env!("CARGO_PKG_VERSION"));

/// The registry's task name for the actor model.
pub const ACTORS_TASK: &str = "actors";

/// `--arch` for a face-gallery model instead of a classifier.
const FACE_GALLERY: &str = "face";

#[derive(Debug, clap::Args)]
pub struct ActorsArgs {
    /// The dataset: `<actor>/<photo>` folders (`starcast dataset import` makes one).
    #[arg(long, default_value = "data/datasets/actors")]
    pub data: PathBuf,
    /// The pretrained classifier to start from: a model folder, a weights file
    /// or `hf://user/repo`. Its head is replaced by one for the dataset's actors.
    #[arg(long, default_value = "data/models/mobilenet-v2-imagenet")]
    pub base: PathBuf,
    /// The base's architecture (resnet18, mobilenet_v2, ...), when neither its
    /// config.json nor its tensor names tell; `face` enrolls the photos in a
    /// face-gallery model (detector + descriptor network from --faces)
    /// instead of training a classifier.
    #[arg(long)]
    pub arch: Option<String>,
    /// The face model `--arch face` enrolls the photos with.
    #[arg(long, default_value = "data/models/face-gallery")]
    pub faces: PathBuf,
    /// Train every layer (BatchNorm in training mode) instead of only a new
    /// head on the frozen network: better with many photos, much slower.
    #[arg(long)]
    pub full: bool,
    /// Where training runs (with --full, the whole network; otherwise the
    /// new head, the frozen network running on the CPU as served).
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = TrainOptions::default().batch as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub batch: u16,
    /// The peak learning rate (AdamW, linear warm-up then cosine decay);
    /// 0.003 for a new head, 0.0003 with --full.
    #[arg(long)]
    pub lr: Option<f64>,
    /// The share of each actor's photos held out for validation.
    #[arg(long, default_value_t = TrainOptions::default().validation_share)]
    pub validation_share: f64,
    /// Epochs without a better validation accuracy before training stops.
    #[arg(long, default_value_t = TrainOptions::default().patience)]
    pub patience: usize,
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    pub seed: u64,
    /// Where each epoch is saved while training; a rerun after a crash
    /// continues from there. Removed when training ends.
    #[arg(long, default_value = "data/checkpoints/actors")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub publish: Publish,
    /// The validation figure promotion compares: accuracy, macro_f1 or loss.
    #[arg(long, default_value = "accuracy")]
    pub metric: String,
    /// The MLflow experiment the run goes under.
    #[arg(
        long,
        env = "MLFLOW_EXPERIMENT_NAME",
        default_value = "starcast-actors"
    )]
    pub experiment: String,
}

/// Where a trained model goes and who hears of it: both `train` commands.
#[derive(Debug, clap::Args)]
pub struct Publish {
    /// Write the model folder here instead of registering a new version.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The model registry.
    #[arg(long, env = "STARCAST_REGISTRY", default_value = "data/registry")]
    pub registry: PathBuf,
    /// Register the new version without serving it, whatever its score.
    #[arg(long)]
    pub no_promote: bool,
    /// How much better than the served version the new one must be (on
    /// --metric for actors; in held-out perplexity for horoscopes).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// An MLflow tracking server to log the run to: options, metrics per
    /// epoch, final figures and the model folder's files.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub mlflow: Option<String>,
}

impl ActorsArgs {
    fn options(&self) -> anyhow::Result<TrainOptions> {
        anyhow::ensure!(self.epochs > 0, "--epochs must be at least 1");
        let method = if self.full {
            Method::Full
        } else {
            Method::HeadOnly
        };
        let learning_rate = self.lr.unwrap_or(method.default_learning_rate());
        anyhow::ensure!(
            learning_rate > 0.0 && learning_rate.is_finite(),
            "--lr must be a positive number"
        );
        Ok(TrainOptions {
            epochs: self.epochs,
            batch: usize::from(self.batch),
            learning_rate,
            method,
            validation_share: self.validation_share,
            patience: self.patience.max(1),
            seed: self.seed,
            ..TrainOptions::default()
        })
    }
}

/// A progress bar over every optimiser step, with the latest loss; each
/// finished epoch is printed as `describe` words it.
fn progress_bar<E>(describe: impl Fn(&E) -> String) -> impl FnMut(Progress<E>) {
    let bar = ProgressBar::hidden();
    let mut steps = 0;
    move |event| match event {
        Progress::Started {
            epochs,
            steps_per_epoch,
        } => {
            steps = steps_per_epoch;
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length((epochs * steps_per_epoch) as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} training [{bar:30}] {pos}/{len} steps, {elapsed} ({eta} left) {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
        }
        Progress::Resumed { epoch } => {
            bar.suspend(|| eprintln!("resuming after epoch {epoch} from the checkpoint"));
            bar.set_position((epoch * steps) as u64);
        }
        Progress::Step { loss } => {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.3}"));
        }
        // Printed beside the bar, not through it: a hidden bar (no terminal,
        // as in a pipeline run's log) would swallow the lines.
        Progress::Epoch(record) => bar.suspend(|| eprintln!("{}", describe(record))),
    }
}

pub fn actors(args: ActorsArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    let data = ImageFolder::scan(&args.data)?;
    if args.arch.as_deref() == Some(FACE_GALLERY) {
        return face_gallery(&args, &options, &data);
    }
    let base = local_model(&args.base)?;
    let classifier_options = ClassifierOptions {
        architecture: args.arch.clone(),
        ..ClassifierOptions::default()
    };
    let backbone = ImageClassifier::load(&base, &classifier_options).with_context(|| {
        format!(
            "could not load the base model {}: run scripts/fetch-defaults.sh for the ImageNet MobileNetV2, or pass --base",
            args.base.display()
        )
    })?;
    let weights = backbone
        .weights_path()
        .context("the base model has no weights file")?;
    let backbone_tensors = read_weights(weights)?;
    let what = match options.method {
        Method::HeadOnly => "a new head of",
        Method::Full => "every layer of",
    };
    eprintln!(
        "training {what} {} for {} actors ({} photos) from {}",
        backbone.info().architecture,
        data.classes.len(),
        data.samples.len(),
        args.base.display()
    );
    let trained = fine_tune(
        &backbone,
        backbone_tensors,
        &data,
        &options,
        &args.device.open()?,
        Some(&args.checkpoint),
        progress_bar(|record: &EpochRecord| {
            format!(
                "epoch {:>3}: training loss {:.4}, validation loss {:.4}, accuracy {:.1}%",
                record.epoch,
                record.train_loss,
                record.validation_loss,
                record.validation_accuracy * 100.0
            )
        }),
    )?;
    for photo in &trained.skipped {
        eprintln!("skipped {}: {}", photo.path.display(), photo.reason);
    }
    eprintln!(
        "best epoch {} of {}",
        trained.best_epoch,
        trained.history.len()
    );
    let name = format!("{}-actors", backbone.info().architecture);
    let candidate = Candidate {
        report: &trained.report,
        validation: named(&trained.validation, &data),
        history: &trained.history,
        best_epoch: trained.best_epoch,
        architecture: trained.architecture.clone(),
    };
    finish(&args, &options, &candidate, |folder| {
        Ok(trained.save(folder, &name, &options)?)
    })
}

/// `--arch face`: the pretrained face detector and descriptor network
/// enroll the training photos as a gallery; the held-out photos evaluate it.
fn face_gallery(
    args: &ActorsArgs,
    options: &TrainOptions,
    data: &ImageFolder,
) -> anyhow::Result<()> {
    let faces = &args.faces;
    anyhow::ensure!(
        faces.join("config.json").is_file(),
        "no face model in {}: run scripts/fetch-defaults.sh or pass --faces",
        faces.display()
    );
    let (train, validation) = stratified_split(data, options.validation_share, options.seed)?;
    eprintln!(
        "enrolling {} photos of {} actors with the face model in {}",
        train.len(),
        data.classes.len(),
        faces.display()
    );
    let scratch = tempfile::tempdir()?;
    write_gallery(faces, &named(&train, data), scratch.path())?;
    let model = load_actor_recognizer(scratch.path(), &ClassifierOptions::default())
        .context("the enrolled gallery does not load")?;
    let validation = named(&validation, data);
    let (report, skipped) = evaluate_recognizer(model.as_ref(), &validation)?;
    for photo in &skipped {
        eprintln!("skipped {}: {}", photo.path.display(), photo.reason);
    }
    let candidate = Candidate {
        report: &report,
        validation,
        history: &[],
        best_epoch: 0,
        architecture: FACE_GALLERY.into(),
    };
    let enrolled = named(&train, data);
    finish(args, options, &candidate, |folder| {
        write_gallery(faces, &enrolled, folder)?;
        let metrics = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(folder.join("metrics.json"), metrics)?;
        Ok(())
    })
}

/// `(path, class index)` pairs as `(path, class name)`.
fn named(photos: &[(PathBuf, usize)], data: &ImageFolder) -> Vec<(PathBuf, String)> {
    photos
        .iter()
        .map(|(path, class)| (path.clone(), data.classes[*class].clone()))
        .collect()
}

/// What any way of training hands on to saving, promotion and tracking.
struct Candidate<'a> {
    report: &'a ClassificationReport,
    /// The held-out photos the report is about; promotion evaluates the
    /// served version on the same ones.
    validation: Vec<(PathBuf, String)>,
    history: &'a [EpochRecord],
    best_epoch: usize,
    architecture: String,
}

/// Prints the report, writes the model (to `--out` or as the registry's
/// next version, served if it wins) and logs the run to MLflow if asked.
fn finish(
    args: &ActorsArgs,
    options: &TrainOptions,
    candidate: &Candidate,
    write: impl Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    print_report(candidate.report);
    step_metrics::report(&[
        ("accuracy", candidate.report.accuracy),
        ("macro_f1", candidate.report.macro_f1),
    ])?;
    let (folder, version) = match &args.publish.out {
        Some(out) => {
            write(out)?;
            println!("model written to {}", out.display());
            (out.clone(), None)
        }
        None => {
            let version = register(args, options, &write)?;
            if !args.publish.no_promote {
                let rule = PromotionRule {
                    metric: args.metric.clone(),
                    margin: args.publish.margin,
                };
                promote_if_better(
                    &Registry::new(&args.publish.registry),
                    &version,
                    candidate,
                    &rule,
                )?;
            }
            (version.path.clone(), Some(version.id))
        }
    };
    if let Some(url) = &args.publish.mlflow {
        let server = MlflowServer::new(url);
        log_to_mlflow(
            &server,
            &args.experiment,
            candidate,
            options,
            &folder,
            version.as_deref(),
        )
        .with_context(|| {
            format!(
                "the model is saved in {}, but logging the run to MLflow failed",
                folder.display()
            )
        })?;
        println!("logged to MLflow at {url}, experiment {}", args.experiment);
    }
    Ok(())
}

/// Writes the model as the registry's next version.
fn register(
    args: &ActorsArgs,
    options: &TrainOptions,
    write: &impl Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<Version> {
    let registry = Registry::new(&args.publish.registry);
    let staged = registry.stage(ACTORS_TASK)?;
    write(staged.path())?;
    let base = match args.arch.as_deref() {
        Some(FACE_GALLERY) => &args.faces,
        _ => &args.base,
    };
    let lineage = Lineage {
        created: chrono::Utc::now(),
        dataset: args.data.display().to_string(),
        dataset_hash: fingerprint(&args.data)
            .with_context(|| format!("could not read {}", args.data.display()))?,
        base_model: base.display().to_string(),
        parameters: serde_json::to_value(options)?,
        code_revision: CODE_REVISION.to_string(),
    };
    let version = registry.commit(staged, &lineage)?;
    println!(
        "registered {} version {} in {}",
        ACTORS_TASK,
        version.id,
        version.path.display()
    );
    Ok(version)
}

/// Training options as MLflow parameters: each field's value as text.
fn mlflow_parameters(options: &impl serde::Serialize) -> anyhow::Result<Vec<(String, String)>> {
    Ok(serde_json::to_value(options)?
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.to_string().trim_matches('"').to_string()))
        .collect())
}

/// One MLflow run: the options as parameters, each epoch's figures, the
/// final report, and the model folder's small files.
fn log_to_mlflow(
    server: &MlflowServer,
    experiment: &str,
    candidate: &Candidate,
    options: &TrainOptions,
    folder: &Path,
    version: Option<&str>,
) -> anyhow::Result<()> {
    let mut parameters = mlflow_parameters(options)?;
    parameters.push(("architecture".into(), candidate.architecture.clone()));
    let labels: Vec<&str> = candidate
        .report
        .classes
        .iter()
        .map(|c| c.label.as_str())
        .collect();
    parameters.push(("labels".into(), labels.join(", ")));
    if let Some(version) = version {
        parameters.push(("registry_version".into(), version.to_string()));
    }
    let run = server.start_run(experiment, version.unwrap_or("trained"), &parameters)?;
    for record in candidate.history {
        run.log_metrics(
            record.epoch,
            &[
                ("train_loss", record.train_loss),
                ("validation_loss", record.validation_loss),
                ("validation_accuracy", record.validation_accuracy),
                ("learning_rate", record.learning_rate),
            ],
        )?;
    }
    let report = candidate.report;
    run.log_metrics(
        candidate.best_epoch,
        &[
            ("accuracy", report.accuracy),
            ("macro_f1", report.macro_f1),
            ("loss", report.loss.unwrap_or(f64::NAN)),
        ],
    )?;
    finish_run(
        run,
        folder,
        &[
            "config.json",
            "metrics.json",
            "training.json",
            "curves.svg",
            "lineage.json",
        ],
    )
}

/// Logs those of `files` the model folder has as artifacts and ends the run.
fn finish_run(run: MlflowRun, folder: &Path, files: &[&str]) -> anyhow::Result<()> {
    for file in files {
        let path = folder.join(file);
        if path.is_file() {
            run.log_artifact(&path)?;
        }
    }
    run.finish(true)?;
    Ok(())
}

/// Evaluates the served version on the new version's held-out photos and
/// serves the new one if it wins by the rule's margin.
fn promote_if_better(
    registry: &Registry,
    version: &Version,
    candidate: &Candidate,
    rule: &PromotionRule,
) -> anyhow::Result<()> {
    let candidate_score = candidate.report.metric(&rule.metric).with_context(|| {
        format!(
            "'{}' is not a classifier metric: use accuracy, macro_f1 or loss",
            rule.metric
        )
    })?;
    let serving = registry.serving(ACTORS_TASK)?;
    let actors = |labels: &[String]| -> Vec<String> {
        labels
            .iter()
            .filter(|l| l.as_str() != "unknown")
            .cloned()
            .collect()
    };
    let serving_score = match &serving {
        None => None,
        Some(served) if actors(&served.labels) != actors(&version.labels) => {
            println!(
                "not served: the actors changed since {} ({}) and {} ({}) can't be compared on the same photos; check {} and run `starcast models promote {}`",
                served.id,
                served.labels.join(", "),
                version.id,
                version.labels.join(", "),
                version.path.display(),
                version.id
            );
            return Ok(());
        }
        Some(served) => {
            let model = load_actor_recognizer(&served.path, &ClassifierOptions::default())
                .with_context(|| format!("could not load the served version {}", served.id))?;
            let (report, _) = evaluate_recognizer(model.as_ref(), &candidate.validation)?;
            Some((
                served.id.as_str(),
                report.metric(&rule.metric).unwrap_or(f64::NAN),
            ))
        }
    };
    let (promote, reason) = rule.judge(candidate_score, serving_score);
    if promote {
        registry.promote(ACTORS_TASK, &version.id, &reason)?;
        println!("serving {}: {reason}", version.id);
    } else {
        println!("not served: {reason}");
    }
    Ok(())
}

/// The report as a table for the terminal.
pub fn print_report(report: &ClassificationReport) {
    println!(
        "accuracy {:.1}% on {} photos, macro F1 {:.3}{}",
        report.accuracy * 100.0,
        report.examples,
        report.macro_f1,
        report
            .loss
            .map(|l| format!(", loss {l:.4}"))
            .unwrap_or_default()
    );
    println!("{:>24}  precision  recall  photos", "actor");
    for class in &report.classes {
        println!(
            "{:>24}  {:>9.3}  {:>6.3}  {:>6}",
            class.label, class.precision, class.recall, class.support
        );
    }
}
