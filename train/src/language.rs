//! Fine-tuning the horoscope language model on processed horoscopes: the
//! whole network or LoRA adapters, on the prompt format generation uses,
//! with the loss on the horoscope's tokens only and held-out perplexity
//! after every epoch.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use starcast_model::folder::ModelConfig;
use starcast_model::text::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, Cache, Kernels, Llama, Lora, PromptStyle,
    adapter_tensor, cross_entropy, horoscope_prompt, save_llama, stop_tokens,
};
use starcast_model::vision::NamedTensors;
use starcast_model::{Language, ModelKind};
use tokenizers::Tokenizer;

use crate::checkpoint::{Checkpoint, EpochFigures};
use crate::epochs::{Epoch, Epochs, Progress, Schedule, run_epochs};
use crate::error::TrainError;
use crate::optimizer::{AdamW, ParamsAdamW};
use crate::schedule::WarmupCosine;
use crate::text_eval::HoroscopeText;

/// Adapters instead of the whole network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoraOptions {
    pub rank: usize,
    pub alpha: f64,
    /// The projections that get adapters (`q_proj`, `v_proj`, ...).
    pub targets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LanguageOptions {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Longer examples (prompt and horoscope) are cut to this many tokens.
    pub max_tokens: usize,
    /// Horoscopes kept out of training to measure perplexity on.
    pub held_out: usize,
    pub lora: Option<LoraOptions>,
    pub prompt: PromptStyle,
    pub seed: u64,
}

impl Default for LanguageOptions {
    fn default() -> Self {
        LanguageOptions {
            epochs: 3,
            batch: 4,
            learning_rate: 2e-4,
            weight_decay: 0.0,
            max_tokens: 192,
            held_out: 8,
            lora: Some(LoraOptions {
                rank: 8,
                alpha: 16.0,
                targets: vec!["q_proj".into(), "v_proj".into()],
            }),
            prompt: PromptStyle::Horoscope,
            seed: 42,
        }
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LanguageEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub held_out_loss: f64,
    pub held_out_perplexity: f64,
    pub learning_rate: f64,
    pub tokens_per_s: f64,
}

/// What training measured: `metrics.json` of the model it writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LanguageReport {
    /// Held-out perplexity of the model training started from.
    pub base_perplexity: f64,
    /// Held-out perplexity of the epoch kept.
    pub perplexity: f64,
    pub train_texts: usize,
    pub held_out_texts: usize,
    pub held_out_tokens: usize,
    pub best_epoch: usize,
    pub history: Vec<LanguageEpoch>,
}

/// One tokenized horoscope: the prompt's tokens, then the text's and the
/// end-of-text token; the loss counts only the positions after the prompt.
#[derive(Clone, Debug)]
struct Example {
    tokens: Vec<u32>,
    prompt_len: usize,
}

impl Example {
    fn answer_tokens(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
}

fn tokenize(
    tokenizer: &Tokenizer,
    text: &HoroscopeText,
    style: PromptStyle,
    end: Option<u32>,
    max_tokens: usize,
) -> Result<Example, TrainError> {
    let prompt = horoscope_prompt(style, text.sign, text.date, Language::of_text(&text.text));
    let encode = |s: &str, document: bool| {
        tokenizer
            .encode(s, document)
            .map(|e| e.get_ids().to_vec())
            .map_err(TrainError::Tokenizer)
    };
    let mut tokens = encode(&prompt.input, style.starts_a_document())?;
    let prompt_len = tokens.len();
    let answer = text
        .text
        .strip_prefix(&prompt.answer_start)
        .unwrap_or(&text.text);
    tokens.extend(encode(answer, false)?);
    tokens.extend(end);
    tokens.truncate(max_tokens);
    if tokens.len() <= prompt_len {
        return Err(TrainError::PromptTooLong {
            prompt_tokens: prompt_len,
            max_tokens,
        });
    }
    Ok(Example { tokens, prompt_len })
}

/// A model being trained: the network and the variables the optimiser moves.
struct Learner {
    model: Llama,
    variables: Vec<(String, Var)>,
}

impl Learner {
    fn full(base: &Llama) -> candle_core::Result<Self> {
        let mut variables = Vec::new();
        let mut by_name = HashMap::new();
        for (name, tensor) in base.named_weights()? {
            let var = Var::from_tensor(&tensor)?;
            by_name.insert(name.clone(), var.as_tensor().clone());
            variables.push((name, var));
        }
        let model = Llama::from_tensors(base.config().clone(), |name, _| {
            by_name
                .remove(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no weight {name}")))
        })?;
        Ok(Learner { model, variables })
    }

    /// PEFT's initialisation: `A` uniform in ±1/√in, `B` zero, so training
    /// starts from the base model's outputs.
    fn lora(base: &Llama, options: &LoraOptions, seed: u64) -> candle_core::Result<Self> {
        let mut model = base.clone();
        let mut variables = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = options.alpha / options.rank as f64;
        for projection in &options.targets {
            model.attach_lora(projection, |layer, input, output| {
                let bound = 1.0 / (input as f64).sqrt();
                let values: Vec<f32> = (0..options.rank * input)
                    .map(|_| rand::Rng::random_range(&mut rng, -bound..bound) as f32)
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(
                    values,
                    (options.rank, input),
                    base.device(),
                )?)?;
                let b = Var::zeros((output, options.rank), DType::F32, base.device())?;
                let lora = Lora {
                    a: a.as_tensor().clone(),
                    b: b.as_tensor().clone(),
                    scale,
                };
                variables.push((adapter_tensor(layer, projection, 'A'), a));
                variables.push((adapter_tensor(layer, projection, 'B'), b));
                Ok(lora)
            })?;
        }
        Ok(Learner { model, variables })
    }

    /// The summed loss (natural log) over the answer tokens of `examples`,
    /// and how many tokens it covers.
    fn loss(&self, examples: &[&Example]) -> candle_core::Result<(Tensor, usize)> {
        let width = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
        let mut inputs = Vec::with_capacity(examples.len() * width);
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (index, example) in examples.iter().enumerate() {
            inputs.extend(&example.tokens);
            inputs.extend(std::iter::repeat_n(0, width - example.tokens.len()));
            // Position p predicts token p + 1.
            for position in example.prompt_len - 1..example.tokens.len() - 1 {
                rows.push((index * width + position) as u32);
                targets.push(example.tokens[position + 1]);
            }
        }
        let inputs = Tensor::from_vec(inputs, (examples.len(), width), self.model.device())?;
        let hidden = self.model.hidden(&inputs, &mut Cache::default())?;
        let hidden = hidden.flatten_to(1)?;
        let count = rows.len();
        let rows = Tensor::from_vec(rows, count, self.model.device())?;
        let logits = self.model.logits(&hidden.index_select(&rows, 0)?)?;
        let targets = Tensor::from_vec(targets, count, self.model.device())?;
        let loss = (cross_entropy(&logits, &targets)? * count as f64)?;
        Ok((loss, count))
    }

    /// Mean loss per token over `examples`, without gradients.
    fn evaluate(&mut self, examples: &[Example], batch: usize) -> candle_core::Result<f64> {
        self.model.set_kernels(Kernels::Fused);
        let mut total = 0.0;
        let mut tokens = 0;
        for chunk in examples.chunks(batch.max(1)) {
            let refs: Vec<&Example> = chunk.iter().collect();
            let (loss, count) = self.loss(&refs)?;
            total += loss.detach().to_scalar::<f32>()? as f64;
            tokens += count;
        }
        self.model.set_kernels(Kernels::Differentiable);
        Ok(total / tokens.max(1) as f64)
    }

    fn snapshot(&self) -> candle_core::Result<NamedTensors> {
        self.variables
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect()
    }

    fn restore(&self, snapshot: &NamedTensors) -> candle_core::Result<()> {
        for (name, var) in &self.variables {
            let saved = snapshot.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("the best epoch's variables lack {name}"))
            })?;
            var.set(&saved.to_device(var.device())?)?;
        }
        Ok(())
    }
}

/// A fine-tuned language model, ready to be written as a model folder.
pub struct TrainedLanguageModel {
    learner: Learner,
    pub options: LanguageOptions,
    pub report: LanguageReport,
}

impl EpochFigures for LanguageEpoch {
    fn epoch(&self) -> usize {
        self.epoch
    }
}

/// Fine-tunes `base` on `texts`: the last `options.held_out` texts are kept
/// out to measure perplexity; the epoch with the lowest held-out loss is kept.
/// With a checkpoint folder, each epoch is saved there (variables and AdamW's
/// moments) and a rerun after a crash continues after the last finished one.
pub fn fine_tune_language(
    base: &Llama,
    tokenizer: &Tokenizer,
    texts: &[HoroscopeText],
    options: &LanguageOptions,
    checkpoint: Option<&Path>,
    mut progress: impl FnMut(Progress<LanguageEpoch>),
) -> Result<TrainedLanguageModel, TrainError> {
    if texts.len() <= options.held_out {
        return Err(TrainError::TooFewHoroscopes {
            texts: texts.len(),
            held_out: options.held_out,
        });
    }
    let end = stop_tokens(tokenizer).first().copied();
    let examples = texts
        .iter()
        .map(|t| tokenize(tokenizer, t, options.prompt, end, options.max_tokens))
        .collect::<Result<Vec<_>, _>>()?;
    let (train, held_out) = examples.split_at(examples.len() - options.held_out);
    let mut learner = match &options.lora {
        Some(lora) => Learner::lora(base, lora, options.seed)?,
        None => Learner::full(base)?,
    };
    learner.model.set_kernels(Kernels::Differentiable);
    let base_loss = learner.evaluate(held_out, options.batch)?;
    let steps_per_epoch = train.len().div_ceil(options.batch.max(1));
    let schedule = WarmupCosine {
        peak: options.learning_rate,
        warmup_steps: (steps_per_epoch * options.epochs / 10).max(1),
        total_steps: steps_per_epoch * options.epochs,
    };
    let mut optimizer = AdamW::new(
        learner.variables.clone(),
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: options.weight_decay,
            ..Default::default()
        },
    )?;
    let mut varmap = VarMap::new();
    varmap
        .data()
        .lock()
        .expect("a fresh variable map")
        .extend(learner.variables.iter().cloned());
    let identity = (
        serde_json::to_string(options).expect("plain data serialises"),
        texts
            .iter()
            .map(|t| (t.sign.key(), t.date.to_string(), &t.text))
            .collect::<Vec<_>>(),
        serde_json::to_string(base.config()).expect("plain data serialises"),
    );
    let mut epochs = LanguageEpochs {
        learner: &mut learner,
        train,
        held_out,
        batch: options.batch.max(1),
        seed: options.seed,
        learning_rate: schedule,
    };
    let Epochs { history, best } = run_epochs(
        &mut epochs,
        &Schedule {
            epochs: options.epochs,
            steps_per_epoch,
            patience: None,
        },
        checkpoint.map(|dir| Checkpoint::new(dir, &identity)),
        &mut varmap,
        &mut optimizer,
        &mut progress,
    )?;
    let (best_loss, best_epoch) = match best {
        Some(best) => {
            learner.restore(&best.tensors)?;
            (best.record.held_out_loss, best.record.epoch)
        }
        None => (base_loss, 0),
    };
    learner.model.set_kernels(Kernels::Fused);
    let report = LanguageReport {
        base_perplexity: base_loss.exp(),
        perplexity: best_loss.exp(),
        train_texts: train.len(),
        held_out_texts: held_out.len(),
        held_out_tokens: held_out.iter().map(Example::answer_tokens).sum(),
        best_epoch,
        history,
    };
    Ok(TrainedLanguageModel {
        learner,
        options: options.clone(),
        report,
    })
}

/// An epoch of fine-tuning a language model: the training horoscopes in
/// a seeded order, then the loss on the held-out ones.
struct LanguageEpochs<'a> {
    learner: &'a mut Learner,
    train: &'a [Example],
    held_out: &'a [Example],
    batch: usize,
    seed: u64,
    learning_rate: WarmupCosine,
}

impl Epoch for LanguageEpochs<'_> {
    type Record = LanguageEpoch;
    type Outcomes = ();

    fn train(
        &mut self,
        epoch: usize,
        step: &mut usize,
        optimiser: &mut AdamW,
        progress: &mut dyn FnMut(Progress<LanguageEpoch>),
    ) -> Result<(LanguageEpoch, ()), TrainError> {
        // Seeded per epoch, so a resumed run draws what an unbroken one would.
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(epoch as u64));
        let mut order: Vec<&Example> = self.train.iter().collect();
        order.shuffle(&mut rng);
        let started = Instant::now();
        let (mut epoch_loss, mut epoch_tokens, mut fed) = (0.0, 0, 0);
        for batch in order.chunks(self.batch) {
            optimiser.set_learning_rate(self.learning_rate.at(*step));
            let (loss, count) = self.learner.loss(batch)?;
            let mean = (loss / count as f64)?;
            optimiser.backward_step(&mean)?;
            let value = f64::from(mean.to_scalar::<f32>()?);
            progress(Progress::Step { loss: value });
            epoch_loss += value * count as f64;
            epoch_tokens += count;
            fed += batch.iter().map(|e| e.tokens.len()).sum::<usize>();
            *step += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        let held_out_loss = self.learner.evaluate(self.held_out, self.batch)?;
        let record = LanguageEpoch {
            epoch,
            train_loss: epoch_loss / epoch_tokens.max(1) as f64,
            held_out_loss,
            held_out_perplexity: held_out_loss.exp(),
            learning_rate: self.learning_rate.at(step.saturating_sub(1)),
            tokens_per_s: fed as f64 / seconds.max(1e-9),
        };
        Ok((record, ()))
    }

    fn improves_on(&self, record: &LanguageEpoch, best: &LanguageEpoch) -> bool {
        record.held_out_loss < best.held_out_loss
    }

    fn snapshot(&self) -> Result<NamedTensors, TrainError> {
        Ok(self.learner.snapshot()?)
    }
}

impl TrainedLanguageModel {
    /// The fine-tuned network, adapters attached (not merged).
    pub fn model(&self) -> &Llama {
        &self.learner.model
    }

    /// Writes the model folder: adapters in PEFT's format over `base` (a
    /// folder or `hf://user/repo`), or the whole network as safetensors;
    /// then `config.json` (the prompt format it was trained on),
    /// `metrics.json` and `training.json`.
    pub fn save(
        &self,
        dir: &Path,
        base: &str,
        tokenizer: &Tokenizer,
        name: &str,
    ) -> Result<(), TrainError> {
        let write = |file: &str, contents: String| {
            let path = dir.join(file);
            fs::write(&path, contents).map_err(|source| TrainError::Write { path, source })
        };
        fs::create_dir_all(dir).map_err(|source| TrainError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = ModelConfig {
            name: Some(name.into()),
            source: Some(format!("fine-tuned from {base}")),
            prompt: Some(self.options.prompt),
            ..ModelConfig::new(ModelKind::TextGeneration, "llama")
        };
        match &self.options.lora {
            Some(lora) => {
                let targets: Vec<&str> = lora.targets.iter().map(String::as_str).collect();
                let adapter = AdapterConfig::new(base.to_string(), lora.rank, lora.alpha, &targets);
                write(
                    ADAPTER_CONFIG,
                    serde_json::to_string_pretty(&adapter).unwrap_or_default(),
                )?;
                let tensors: HashMap<String, Tensor> = self
                    .learner
                    .variables
                    .iter()
                    .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
                    .collect();
                let path = dir.join(ADAPTER_WEIGHTS);
                candle_core::safetensors::save(&tensors, &path)
                    .map_err(|source| TrainError::WriteTensors { path, source })?;
                write("config.json", config.to_json())?;
            }
            None => save_llama(dir, &self.learner.model, tokenizer, DType::F32, config)?,
        }
        write(
            "metrics.json",
            serde_json::to_string_pretty(&self.metrics()).unwrap_or_default(),
        )?;
        write(
            "training.json",
            serde_json::to_string_pretty(&serde_json::json!({
                "options": self.options,
                "report": self.report,
            }))
            .unwrap_or_default(),
        )
    }

    /// The figures the registry promotes on: top-level numbers.
    fn metrics(&self) -> serde_json::Value {
        serde_json::json!({
            "perplexity": self.report.perplexity,
            "base_perplexity": self.report.base_perplexity,
            "held_out_texts": self.report.held_out_texts,
            "held_out_tokens": self.report.held_out_tokens,
            "best_epoch": self.report.best_epoch,
        })
    }
}
