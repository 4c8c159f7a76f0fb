//! Transfer learning for the actor classifier: a pretrained backbone's
//! pooled features feed a new linear head, trained with AdamW on
//! augmented photos, stopped early on the validation accuracy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use image::{DynamicImage, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use starcast_model::ModelKind;
use starcast_model::folder::ModelConfig;
use starcast_model::vision::{Architecture, ImageClassifier, NamedTensors, Network, Preprocess};

use crate::ImageFolder;
use crate::augment::Augment;
use crate::checkpoint::{BestEpoch, Checkpoint, EpochFigures};
use crate::curves::{self, EpochRecord};
use crate::epochs::{Epoch, Epochs, Progress, Schedule, run_epochs};
use crate::error::TrainError;
use crate::metrics::ClassificationReport;
use crate::optimizer::{AdamW, ParamsAdamW};
use crate::schedule::WarmupCosine;
use crate::split::stratified_split;
use crate::trainable::TrainingConvNorm;

/// The knobs of a training run, with fine-tuning's usual defaults.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// The share of each class held out for validation.
    pub validation_share: f64,
    /// Epochs without a better validation score before stopping.
    pub patience: usize,
    pub warmup_epochs: usize,
    pub seed: u64,
    pub method: Method,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 15,
            batch: 16,
            learning_rate: Method::HeadOnly.default_learning_rate(),
            weight_decay: 1e-2,
            validation_share: 0.2,
            patience: 4,
            warmup_epochs: 1,
            seed: 42,
            method: Method::HeadOnly,
        }
    }
}

/// A photo the run left out, and why.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedPhoto {
    pub path: PathBuf,
    pub reason: String,
}

/// A trained classifier, ready to be written as a model folder.
pub struct TrainedClassifier {
    pub labels: Vec<String>,
    pub architecture: String,
    pub preprocess: Preprocess,
    /// The whole network, torchvision names: the backbone's tensors and the new head.
    pub tensors: NamedTensors,
    pub history: Vec<EpochRecord>,
    /// The best epoch's evaluation on the validation photos.
    pub report: ClassificationReport,
    pub best_epoch: usize,
    pub skipped: Vec<SkippedPhoto>,
    /// The validation photos, so that evaluation can reuse the held-out set.
    pub validation: Vec<(PathBuf, usize)>,
}

/// Decodes every photo once, shrunk to what augmentation needs; photos that
/// don't decode are skipped and reported, not fatal.
fn decode_all(
    data: &ImageFolder,
    shorter_side: u32,
) -> (ImageFolder, HashMap<PathBuf, RgbImage>, Vec<SkippedPhoto>) {
    let mut photos = HashMap::new();
    let mut skipped = Vec::new();
    let mut kept = Vec::new();
    for (path, class) in &data.samples {
        match image::open(path) {
            Ok(photo) => {
                photos.insert(path.clone(), shrink(&photo, shorter_side));
                kept.push((path.clone(), *class));
            }
            Err(e) => skipped.push(SkippedPhoto {
                path: path.clone(),
                reason: format!("not a readable image: {e}"),
            }),
        }
    }
    let folder = ImageFolder {
        classes: data.classes.clone(),
        samples: kept,
    };
    (folder, photos, skipped)
}

/// The photo with its shorter side at most `side` pixels.
fn shrink(photo: &DynamicImage, side: u32) -> RgbImage {
    let (w, h) = (photo.width(), photo.height());
    let shorter = w.min(h);
    if shorter <= side {
        return photo.to_rgb8();
    }
    let scale = f64::from(side) / f64::from(shorter);
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    photo
        .resize_exact(nw, nh, image::imageops::FilterType::Triangle)
        .to_rgb8()
}

/// What is trained: a new head on the frozen backbone's features, or the
/// whole network with BatchNorm in training mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    HeadOnly,
    Full,
}

impl Method {
    /// The peak learning rate that suits the method: a fresh head learns
    /// fast, pretrained layers must move gently.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            Method::HeadOnly => 3e-3,
            Method::Full => 3e-4,
        }
    }
}

/// The part of training that differs between the methods.
trait Learner {
    /// Training-mode logits for a batch of augmented views.
    fn logits(&self, views: &Tensor) -> candle_core::Result<Tensor>;
    /// Logits for the held-out photos, as the served model would give them.
    fn validation_logits(&self) -> Result<Tensor, TrainError>;
    /// The whole network's tensors with torchvision names, as served.
    fn tensors(&self) -> candle_core::Result<NamedTensors>;
}

/// A new linear head on the pooled features of the frozen backbone.
struct HeadOnly<'a> {
    backbone: &'a ImageClassifier,
    backbone_tensors: NamedTensors,
    head: candle_nn::Linear,
    validation_features: Tensor,
}

impl Learner for HeadOnly<'_> {
    fn logits(&self, views: &Tensor) -> candle_core::Result<Tensor> {
        // The frozen backbone is the served network, which runs on the CPU.
        let features = self.backbone.features(&views.to_device(&Device::Cpu)?)?;
        self.head
            .forward(&features.detach().to_device(self.head.weight().device())?)
    }

    fn validation_logits(&self) -> Result<Tensor, TrainError> {
        Ok(self
            .head
            .forward(&self.validation_features)?
            .to_device(&Device::Cpu)?)
    }

    fn tensors(&self) -> candle_core::Result<NamedTensors> {
        let mut tensors = self.backbone_tensors.clone();
        let prefix = self.backbone.architecture().head_prefix();
        let on_cpu = |t: &Tensor| t.to_device(&Device::Cpu)?.copy();
        tensors.insert(format!("{prefix}.weight"), on_cpu(self.head.weight())?);
        let bias = self.head.bias().expect("linear() makes a bias");
        tensors.insert(format!("{prefix}.bias"), on_cpu(bias)?);
        Ok(tensors)
    }
}

/// Every layer trained: the network rebuilt from variables holding the
/// pretrained tensors, with a fresh head and BatchNorm in training mode.
struct Full {
    network: Box<dyn Network>,
    varmap: VarMap,
    architecture: Architecture,
    labels: Vec<String>,
    preprocess: Preprocess,
    validation_inputs: Vec<Tensor>,
}

impl Learner for Full {
    fn logits(&self, views: &Tensor) -> candle_core::Result<Tensor> {
        self.network.forward(views)
    }

    /// Validation runs the served network, BatchNorm folded with the
    /// running averages, on the tensors as they are now.
    fn validation_logits(&self) -> Result<Tensor, TrainError> {
        let served = ImageClassifier::from_tensors(
            self.architecture.clone(),
            self.tensors()?,
            self.labels.clone(),
            self.preprocess.clone(),
        )?;
        let logits = self
            .validation_inputs
            .iter()
            .map(|batch| served.logits(batch))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&logits, 0)?)
    }

    fn tensors(&self) -> candle_core::Result<NamedTensors> {
        let vars = self
            .varmap
            .data()
            .lock()
            .expect("no panics while holding the lock");
        vars.iter()
            .map(|(name, var)| Ok((name.clone(), var.to_device(&Device::Cpu)?.copy()?)))
            .collect()
    }
}

/// The held-out photos through the serving transform, in batches.
fn validation_inputs(
    preprocess: &Preprocess,
    photos: &HashMap<PathBuf, RgbImage>,
    samples: &[(PathBuf, usize)],
    batch: usize,
) -> candle_core::Result<Vec<Tensor>> {
    samples
        .chunks(batch)
        .map(|chunk| {
            let views = chunk
                .iter()
                .map(|(path, _)| preprocess.tensor(&DynamicImage::ImageRgb8(photos[path].clone())))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&views, 0)
        })
        .collect()
}

/// Loss and `(truth, predicted)` pairs from logits.
fn judge(logits: &Tensor, targets: &Tensor) -> candle_core::Result<(f64, Vec<(usize, usize)>)> {
    let loss = candle_nn::loss::cross_entropy(logits, targets)?.to_scalar::<f32>()?;
    let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
    let truth = targets.to_vec1::<u32>()?;
    let outcomes = truth
        .iter()
        .zip(&predicted)
        .map(|(&t, &p)| (t as usize, p as usize))
        .collect();
    Ok((f64::from(loss), outcomes))
}

impl EpochFigures for EpochRecord {
    fn epoch(&self) -> usize {
        self.epoch
    }
}

/// Draws the new head's weights and biases as PyTorch's `Linear` does,
/// uniform in ±1/√in, from `seed` (candle's CPU generator can't be seeded):
/// the same seed trains the same model.
fn seed_head(varmap: &VarMap, prefix: &str, seed: u64) -> candle_core::Result<()> {
    let vars = varmap
        .data()
        .lock()
        .expect("the variable map is not shared");
    let mut head: Vec<(&String, &Var)> = vars
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{prefix}.")))
        .collect();
    head.sort_by_key(|(name, _)| name.as_str());
    let inputs = head
        .iter()
        .find_map(|(_, var)| var.dims2().ok().map(|(_, inputs)| inputs))
        .unwrap_or(1);
    let bound = 1.0 / (inputs as f32).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (_, var) in head {
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
    }
    Ok(())
}

/// Fine-tunes `base` (a pretrained classifier whose weights are
/// `base_tensors`) into a classifier of `data`'s classes, training on
/// `device`; validation runs the served network on the CPU.
/// With a checkpoint folder, each epoch is saved there and a rerun after a
/// crash continues after the last finished one.
pub fn fine_tune(
    base: &ImageClassifier,
    base_tensors: NamedTensors,
    data: &ImageFolder,
    options: &TrainOptions,
    device: &Device,
    checkpoint: Option<&Path>,
    mut progress: impl FnMut(Progress),
) -> Result<TrainedClassifier, TrainError> {
    let preprocess = base.preprocess().clone();
    let (data, photos, skipped) = decode_all(data, preprocess.resize);
    if data.samples.is_empty() {
        return Err(TrainError::NoPhotos);
    }
    let (mut train, validation) = stratified_split(&data, options.validation_share, options.seed)?;
    let batch = options.batch.max(1);
    let inputs = validation_inputs(&preprocess, &photos, &validation, batch)?;
    let targets: Vec<u32> = validation.iter().map(|(_, c)| *c as u32).collect();
    let validation_targets = Tensor::from_vec(targets, validation.len(), &Device::Cpu)?;
    let classes = data.classes.len();
    let head_prefix = base.architecture().head_prefix();

    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let learner: Box<dyn Learner + '_> = match options.method {
        Method::HeadOnly => {
            let features = inputs
                .iter()
                .map(|batch| base.features(batch))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let validation_features = Tensor::cat(&features, 0)?.to_device(device)?;
            let head = candle_nn::linear(validation_features.dim(1)?, classes, vb.pp("head"))?;
            Box::new(HeadOnly {
                backbone: base,
                backbone_tensors: base_tensors,
                head,
                validation_features,
            })
        }
        Method::Full => {
            {
                let mut vars = varmap.data().lock().expect("a fresh lock");
                for (name, tensor) in base_tensors {
                    if !name.starts_with(&format!("{head_prefix}.")) {
                        let tensor = tensor.to_dtype(DType::F32)?.to_device(device)?;
                        vars.insert(name, Var::from_tensor(&tensor)?);
                    }
                }
            }
            let architecture = base.architecture().with_classes(classes);
            let network = architecture.build_with::<TrainingConvNorm>(vb.clone())?;
            Box::new(Full {
                network,
                varmap: varmap.clone(),
                architecture,
                labels: data.classes.clone(),
                preprocess: preprocess.clone(),
                validation_inputs: inputs,
            })
        }
    };
    let new_head = match options.method {
        Method::HeadOnly => "head",
        Method::Full => head_prefix,
    };
    seed_head(&varmap, new_head, options.seed)?;
    let identity = (
        serde_json::to_string(options).expect("plain data serialises"),
        &data.classes,
        &train,
        base.weights_path(),
    );
    // Only what the method trains: the running averages get no gradient
    // and AdamW leaves variables without one alone.
    let named: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("the variable map is not shared across threads")
        .iter()
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    let mut optimiser = AdamW::new(
        named,
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: options.weight_decay,
            ..Default::default()
        },
    )?;
    let checkpoint = checkpoint.map(|dir| Checkpoint::new(dir, &identity));
    let steps_per_epoch = train.len().div_ceil(batch);
    let schedule = Schedule {
        epochs: options.epochs,
        steps_per_epoch,
        patience: Some(options.patience),
    };
    let mut epochs = ClassifierEpochs {
        learner: learner.as_ref(),
        train: &mut train,
        photos: &photos,
        preprocess: &preprocess,
        augment: Augment::new(preprocess.crop),
        batch,
        device,
        seed: options.seed,
        learning_rate: WarmupCosine {
            peak: options.learning_rate,
            warmup_steps: options.warmup_epochs * steps_per_epoch,
            total_steps: options.epochs * steps_per_epoch,
        },
        validation_targets: &validation_targets,
    };
    let Epochs { history, best } = run_epochs(
        &mut epochs,
        &schedule,
        checkpoint,
        &mut varmap,
        &mut optimiser,
        &mut progress,
    )?;
    let BestEpoch {
        record: best,
        tensors,
        outcomes,
    } = best.expect("at least one epoch ran");
    let report = ClassificationReport::new(&data.classes, &outcomes, Some(best.validation_loss));
    Ok(TrainedClassifier {
        labels: data.classes.clone(),
        architecture: base.architecture().name(),
        preprocess,
        tensors,
        history,
        report,
        best_epoch: best.epoch,
        skipped,
        validation,
    })
}

/// An epoch of fine-tuning a classifier: augmented training photos in a
/// seeded order, then the served network on the validation photos.
struct ClassifierEpochs<'a> {
    learner: &'a dyn Learner,
    train: &'a mut Vec<(PathBuf, usize)>,
    photos: &'a HashMap<PathBuf, RgbImage>,
    preprocess: &'a Preprocess,
    augment: Augment,
    batch: usize,
    device: &'a Device,
    seed: u64,
    learning_rate: WarmupCosine,
    validation_targets: &'a Tensor,
}

impl Epoch for ClassifierEpochs<'_> {
    type Record = EpochRecord;
    /// The validation answers as `(truth, predicted)`.
    type Outcomes = Vec<(usize, usize)>;

    fn train(
        &mut self,
        epoch: usize,
        step: &mut usize,
        optimiser: &mut AdamW,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(EpochRecord, Self::Outcomes), TrainError> {
        // Seeded per epoch, so a resumed run draws what an unbroken one would.
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(epoch as u64));
        self.train.sort();
        self.train.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for chunk in self.train.chunks(self.batch) {
            let views = chunk
                .iter()
                .map(|(path, _)| {
                    let photo = DynamicImage::ImageRgb8(self.photos[path].clone());
                    self.preprocess
                        .normalised(&self.augment.apply(&photo, &mut rng), 0, 0)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let targets: Vec<u32> = chunk.iter().map(|(_, c)| *c as u32).collect();
            let targets = Tensor::from_vec(targets, chunk.len(), self.device)?;
            let logits = self
                .learner
                .logits(&Tensor::cat(&views, 0)?.to_device(self.device)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
            optimiser.set_learning_rate(self.learning_rate.at(*step));
            optimiser.backward_step(&loss)?;
            let loss = f64::from(loss.to_scalar::<f32>()?);
            loss_sum += loss * chunk.len() as f64;
            *step += 1;
            progress(Progress::Step { loss });
        }
        let (validation_loss, outcomes) =
            judge(&self.learner.validation_logits()?, self.validation_targets)?;
        let correct = outcomes.iter().filter(|(t, p)| t == p).count();
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / self.train.len() as f64,
            validation_loss,
            validation_accuracy: correct as f64 / outcomes.len() as f64,
            learning_rate: self.learning_rate.at(step.saturating_sub(1)),
        };
        Ok((record, outcomes))
    }

    /// A higher validation accuracy, or the same with a lower loss.
    fn improves_on(&self, record: &EpochRecord, best: &EpochRecord) -> bool {
        record.validation_accuracy > best.validation_accuracy
            || (record.validation_accuracy == best.validation_accuracy
                && record.validation_loss < best.validation_loss)
    }

    fn snapshot(&self) -> Result<NamedTensors, TrainError> {
        Ok(self.learner.tensors()?)
    }
}

impl TrainedClassifier {
    /// Writes the model folder the served app loads as it is: weights,
    /// `config.json` with the labels in index order, `metrics.json`, the
    /// curves and the epoch history.
    pub fn save(
        &self,
        folder: &Path,
        name: &str,
        options: &TrainOptions,
    ) -> Result<(), TrainError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrainError::Write { path, source }
        };
        std::fs::create_dir_all(folder).map_err(write_error(folder))?;
        let weights = folder.join("model.safetensors");
        candle_core::safetensors::save(&self.tensors, &weights).map_err(|source| {
            TrainError::WriteTensors {
                path: weights.clone(),
                source,
            }
        })?;
        let config = ModelConfig {
            name: Some(name.into()),
            labels: self.labels.clone(),
            preprocess: Some(self.preprocess.clone()),
            ..ModelConfig::new(ModelKind::ImageClassification, &self.architecture)
        };
        let training = serde_json::json!({
            "options": options,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "skipped": self.skipped,
        });
        let files = [
            ("config.json", config.to_json()),
            ("metrics.json", pretty(&self.report)),
            ("training.json", pretty(&training)),
            ("curves.svg", curves::svg(&self.history)),
        ];
        for (file, text) in files {
            let path = folder.join(file);
            std::fs::write(&path, text).map_err(write_error(&path))?;
        }
        Ok(())
    }
}

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("plain data serialises") + "\n"
}
