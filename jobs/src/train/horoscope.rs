//! `starcast train horoscope`: fine-tune the horoscope language model on
//! processed horoscopes (LoRA adapters by default, or every weight),
//! register it, and serve it when its held-out perplexity beats the
//! served model's on the same horoscopes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use starcast_model::folder::ModelFolder;
use starcast_model::hub::local_model;
use starcast_model::text::{PROJECTIONS, PromptStyle, load_horoscope_writer, load_llama};
use starcast_model::{HoroscopeWriter, ZodiacSign};
use starcast_pipeline::horoscopes::{read_processed_at, records_fingerprint};
use starcast_pipeline::registry::{Metric, PromotionRule, Task, Version};
use starcast_train::{
    HoroscopeText, LanguageEpoch, LanguageOptions, LoraOptions, fine_tune_language, perplexity,
};

use super::progress_bar;
use super::publish::{
    Baseline, Origin, Publish, Release, Scoring, Tracked, mlflow_parameters, publish,
};
use crate::device::DeviceChoice;
use crate::step_metrics;

#[derive(Debug, clap::Args)]
pub struct HoroscopeArgs {
    /// Processed horoscopes (`starcast process horoscopes` writes them):
    /// `.csv` or `.parquet`, a local path or `s3://bucket/key`.
    #[arg(long, default_value = "data/processed/horoscopes.parquet")]
    pub data: String,
    /// The language model to start from: a model folder (GGUF, safetensors)
    /// or `hf://user/repo`.
    #[arg(long, default_value = "data/models/smollm2-135m-instruct")]
    pub base: PathBuf,
    /// The rank of the LoRA adapters: the saved model is a few megabytes
    /// over the base. Ignored with --full.
    #[arg(long, default_value_t = 8)]
    pub lora: usize,
    /// The adapters' scale numerator (PEFT's lora_alpha); the scale is alpha / rank.
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// The projections that get adapters.
    #[arg(long, value_delimiter = ',', default_value = "q_proj,v_proj")]
    pub lora_targets: Vec<String>,
    /// Train every weight instead of adapters: a full copy of the model
    /// (F32 safetensors), four times the base's memory while training.
    #[arg(long)]
    pub full: bool,
    #[arg(long, default_value_t = LanguageOptions::default().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = LanguageOptions::default().batch)]
    pub batch: usize,
    /// The peak learning rate (AdamW, linear warm-up then cosine decay);
    /// 0.0002 suits adapters, 0.00002 the whole network.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Examples (prompt and horoscope) are cut to this many tokens.
    #[arg(long, default_value_t = LanguageOptions::default().max_tokens)]
    pub max_tokens: usize,
    /// How many of the file's last horoscopes are held out for perplexity
    /// (and promotion).
    #[arg(long, default_value_t = LanguageOptions::default().held_out)]
    pub held_out: usize,
    #[arg(long, default_value_t = LanguageOptions::default().seed)]
    pub seed: u64,
    /// Where each epoch is saved while training; a rerun after a crash
    /// continues from there. Removed when training ends.
    #[arg(long, default_value = "data/checkpoints/horoscope")]
    pub checkpoint: PathBuf,
    /// Where training runs; the model is saved the same either way.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    #[command(flatten)]
    pub publish: Publish,
    /// The MLflow experiment the run goes under.
    #[arg(long, default_value = "starcast-horoscope")]
    pub experiment: String,
}

impl HoroscopeArgs {
    fn options(&self) -> anyhow::Result<LanguageOptions> {
        anyhow::ensure!(self.epochs > 0, "--epochs must be at least 1");
        anyhow::ensure!(self.batch > 0, "--batch must be at least 1");
        anyhow::ensure!(self.held_out > 0, "--held-out must be at least 1");
        let lora = (!self.full)
            .then(|| -> anyhow::Result<LoraOptions> {
                anyhow::ensure!(self.lora > 0, "--lora must be at least 1 (or use --full)");
                for target in &self.lora_targets {
                    anyhow::ensure!(
                        PROJECTIONS.contains(&target.as_str()),
                        "'{target}' is not a Llama projection: use {}",
                        PROJECTIONS.join(", ")
                    );
                }
                Ok(LoraOptions {
                    rank: self.lora,
                    alpha: self.lora_alpha,
                    targets: self.lora_targets.clone(),
                })
            })
            .transpose()?;
        let learning_rate = self.lr.unwrap_or(if self.full { 2e-5 } else { 2e-4 });
        anyhow::ensure!(
            learning_rate > 0.0 && learning_rate.is_finite(),
            "--lr must be a positive number"
        );
        Ok(LanguageOptions {
            epochs: self.epochs,
            batch: self.batch,
            learning_rate,
            max_tokens: self.max_tokens,
            held_out: self.held_out,
            lora,
            prompt: PromptStyle::Horoscope,
            seed: self.seed,
            ..LanguageOptions::default()
        })
    }
}

/// A processed horoscope file, read once: its texts, and the SHA-256 of
/// its rows that a registered version's lineage records.
pub struct Horoscopes {
    pub texts: Vec<HoroscopeText>,
    pub fingerprint: String,
}

/// Processed horoscopes as training and evaluation read them.
pub fn horoscope_texts(location: &str) -> anyhow::Result<Horoscopes> {
    let records = read_processed_at(location).with_context(|| {
        format!(
            "could not read the horoscopes in {location}: give the file `starcast process horoscopes --output` writes"
        )
    })?;
    let texts = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let row = index + 1;
            Ok(HoroscopeText {
                sign: record
                    .sign
                    .parse::<ZodiacSign>()
                    .with_context(|| format!("row {row} of {location}"))?,
                date: chrono::NaiveDate::parse_from_str(&record.date, "%Y-%m-%d").with_context(
                    || format!("row {row} of {location}: the date '{}'", record.date),
                )?,
                text: record.text.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Horoscopes {
        texts,
        fingerprint: records_fingerprint(&records),
    })
}

/// Promotion's side for horoscope models: the held-out perplexity of the
/// new version and of the served model (the registry's, else the base the
/// server falls back to), through the serving code.
struct HeldOut<'a> {
    texts: &'a [HoroscopeText],
    base: &'a Path,
    device: &'a Device,
}

impl HeldOut<'_> {
    fn score(&self, writer: &dyn HoroscopeWriter) -> anyhow::Result<f64> {
        Ok(perplexity(writer, self.texts)?.0)
    }
}

impl Scoring for HeldOut<'_> {
    fn candidate(&self, version: &Version) -> anyhow::Result<f64> {
        let candidate = load_horoscope_writer(&version.path, self.device)
            .with_context(|| format!("the new version {} does not load", version.id))?;
        self.score(candidate.as_ref())
    }

    fn baseline(&self, served: Option<&Version>, _: &Version) -> anyhow::Result<Baseline> {
        let (name, path) = match served {
            Some(served) => (served.id.clone(), served.path.clone()),
            None => (
                format!("the base model {}", self.base.display()),
                local_model(self.base)?,
            ),
        };
        let served = load_horoscope_writer(&path, self.device)
            .with_context(|| format!("could not load the served model {name}"))?;
        Ok(Baseline::Scored {
            score: self.score(served.as_ref())?,
            name,
        })
    }
}

pub fn horoscope(args: HoroscopeArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    let Horoscopes { texts, fingerprint } = horoscope_texts(&args.data)?;
    let base_path = local_model(&args.base)?;
    let base_folder = ModelFolder::open(&base_path).with_context(|| {
        format!(
            "could not open the base model {}: run scripts/fetch-defaults.sh for SmolLM2, or pass --base",
            args.base.display()
        )
    })?;
    let device = args.device.open()?;
    let (base, tokenizer) = load_llama(&base_folder)
        .with_context(|| format!("could not load the base model {}", args.base.display()))?;
    let base = base.to_device(&device)?;
    let what = match &options.lora {
        Some(lora) => format!("rank-{} LoRA adapters on", lora.rank),
        None => "every weight of".into(),
    };
    eprintln!(
        "training {what} {} on {} horoscopes from {} ({} held out)",
        base_folder.info().name,
        texts.len(),
        args.data,
        options.held_out
    );
    let trained = fine_tune_language(
        &base,
        &tokenizer,
        &texts,
        &options,
        Some(&args.checkpoint),
        progress_bar(|record: &LanguageEpoch| {
            format!(
                "epoch {:>3}: training loss {:.4}, held-out perplexity {:.2}, {:.0} tokens/s",
                record.epoch, record.train_loss, record.held_out_perplexity, record.tokens_per_s
            )
        }),
    )?;
    let report = &trained.report;
    println!(
        "held-out perplexity {:.2} (the base model: {:.2}) on {} horoscopes, {} tokens; best epoch {}",
        report.perplexity,
        report.base_perplexity,
        report.held_out_texts,
        report.held_out_tokens,
        report.best_epoch
    );
    let last = report.history.last();
    step_metrics::report(&[
        ("perplexity", report.perplexity),
        ("base_perplexity", report.base_perplexity),
        ("tokens_per_s", last.map_or(0.0, |e| e.tokens_per_s)),
    ])?;
    // Adapters name their base by a location that works from anywhere.
    let base_location = match args.base.to_str() {
        Some(hub) if hub.starts_with("hf://") => hub.to_string(),
        _ => base_path.canonicalize()?.display().to_string(),
    };
    let name = format!("{}-horoscopes", base_folder.info().name);
    let write = |folder: &Path| -> anyhow::Result<()> {
        Ok(trained.save(folder, &base_location, &tokenizer, &name)?)
    };
    let release = Release {
        task: Task::Horoscope,
        origin: Origin {
            dataset: args.data.clone(),
            dataset_hash: fingerprint,
            base_model: base_location.clone(),
            parameters: serde_json::to_value(&options)?,
        },
        write,
        rule: PromotionRule {
            metric: Metric::Perplexity,
            margin: args.publish.margin,
        },
        scoring: &HeldOut {
            texts: &texts[texts.len() - options.held_out..],
            base: &args.base,
            device: &device,
        },
        tracked: Tracked {
            experiment: &args.experiment,
            parameters: mlflow_parameters(&trained.options)?,
            epochs: report
                .history
                .iter()
                .map(|record| {
                    let figures = vec![
                        ("train_loss", record.train_loss),
                        ("held_out_loss", record.held_out_loss),
                        ("held_out_perplexity", record.held_out_perplexity),
                        ("learning_rate", record.learning_rate),
                        ("tokens_per_s", record.tokens_per_s),
                    ];
                    (record.epoch, figures)
                })
                .collect(),
            best_epoch: report.best_epoch,
            figures: vec![
                ("perplexity", report.perplexity),
                ("base_perplexity", report.base_perplexity),
            ],
            files: &[
                "config.json",
                "adapter_config.json",
                "metrics.json",
                "training.json",
                "lineage.json",
            ],
        },
    };
    publish(&args.publish, release)
}
