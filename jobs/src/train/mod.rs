//! `starcast train actors`: fine-tune the actor classifier on a photo
//! dataset, register it as a new version, and serve it when it beats the
//! version served now. `starcast train horoscope` does the same for the
//! horoscope language model.

pub mod horoscope;
pub mod publish;

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use starcast_model::hub::local_model;
use starcast_model::vision::{ClassifierOptions, ImageClassifier, read_weights};
use starcast_model::{ActorRecognizer, load_actor_recognizer};
use starcast_pipeline::registry::{Metric, PromotionRule, Task, Version};
use starcast_train::{
    ClassificationReport, EpochRecord, ImageFolder, Method, Progress, TrainOptions,
    evaluate_recognizer, fine_tune, stratified_split, write_gallery,
};

use self::publish::{
    Baseline, Origin, Publish, Release, Scoring, Tracked, mlflow_parameters, publish,
};
use crate::device::DeviceChoice;
use crate::step_metrics;

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
    #[arg(long, default_value_t = Metric::Accuracy)]
    pub metric: Metric,
    /// The MLflow experiment the run goes under.
    #[arg(
        long,
        env = "MLFLOW_EXPERIMENT_NAME",
        default_value = "starcast-actors"
    )]
    pub experiment: String,
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
        metric: args.metric,
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
        metric: args.metric,
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

/// What any way of training actors hands on to publishing.
struct Candidate<'a> {
    report: &'a ClassificationReport,
    /// The held-out photos the report is about; promotion evaluates the
    /// served version on the same ones.
    validation: Vec<(PathBuf, String)>,
    history: &'a [EpochRecord],
    best_epoch: usize,
    architecture: String,
    metric: Metric,
}

impl Scoring for Candidate<'_> {
    fn candidate(&self, _: &Version) -> anyhow::Result<f64> {
        self.report.metric(self.metric.name()).with_context(|| {
            format!(
                "'{}' is not a classifier metric: use accuracy, macro_f1 or loss",
                self.metric
            )
        })
    }

    fn baseline(&self, served: Option<&Version>, version: &Version) -> anyhow::Result<Baseline> {
        let actors = |labels: &[String]| -> Vec<String> {
            labels
                .iter()
                .filter(|l| l.as_str() != "unknown")
                .cloned()
                .collect()
        };
        Ok(match served {
            None => Baseline::Nothing,
            Some(served) if actors(&served.labels) != actors(&version.labels) => {
                Baseline::Incomparable(format!(
                    "the actors changed since {} ({}) and {} ({}) can't be compared on the same photos; check {} and run `starcast models promote {}`",
                    served.id,
                    served.labels.join(", "),
                    version.id,
                    version.labels.join(", "),
                    version.path.display(),
                    version.id
                ))
            }
            Some(served) => {
                let model = load_actor_recognizer(&served.path, &ClassifierOptions::default())
                    .with_context(|| format!("could not load the served version {}", served.id))?;
                let (report, _) = evaluate_recognizer(model.as_ref(), &self.validation)?;
                Baseline::Scored {
                    name: served.id.clone(),
                    score: report.metric(self.metric.name()).unwrap_or(f64::NAN),
                }
            }
        })
    }
}

/// Prints the report, then publishes the model and its run.
fn finish(
    args: &ActorsArgs,
    options: &TrainOptions,
    candidate: &Candidate,
    write: impl Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let report = candidate.report;
    print_report(report);
    step_metrics::report(&[("accuracy", report.accuracy), ("macro_f1", report.macro_f1)])?;
    let base = match args.arch.as_deref() {
        Some(FACE_GALLERY) => &args.faces,
        _ => &args.base,
    };
    let mut parameters = mlflow_parameters(options)?;
    parameters.push(("architecture".into(), candidate.architecture.clone()));
    let labels: Vec<&str> = report.classes.iter().map(|c| c.label.as_str()).collect();
    parameters.push(("labels".into(), labels.join(", ")));
    let epochs = candidate
        .history
        .iter()
        .map(|record| {
            let figures = vec![
                ("train_loss", record.train_loss),
                ("validation_loss", record.validation_loss),
                ("validation_accuracy", record.validation_accuracy),
                ("learning_rate", record.learning_rate),
            ];
            (record.epoch, figures)
        })
        .collect();
    let release = Release {
        task: Task::Actors,
        origin: Origin::photos(&args.data, base, options)?,
        write,
        rule: PromotionRule {
            metric: candidate.metric,
            margin: args.publish.margin,
        },
        scoring: candidate,
        tracked: Tracked {
            experiment: &args.experiment,
            parameters,
            epochs,
            best_epoch: candidate.best_epoch,
            figures: vec![
                ("accuracy", report.accuracy),
                ("macro_f1", report.macro_f1),
                ("loss", report.loss.unwrap_or(f64::NAN)),
            ],
            files: &[
                "config.json",
                "metrics.json",
                "training.json",
                "curves.svg",
                "lineage.json",
            ],
        },
    };
    publish(&args.publish, release)
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
