//! An image classifier from a student's weights: the architecture and
//! class count read from the tensors when the config doesn't say, labels
//! from the config, `labels.txt` or the caller, never from code.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use image::DynamicImage;

use super::efficientnet::EfficientNet;
use super::error::NetworkError;
use super::layers::{ConvLayer, ConvNorm, Network};
use super::mobilenet_v2::MobileNetV2;
use super::preprocess::Preprocess;
use super::resnet::{self, ResNet};
use super::weights::{NamedTensors, build_exactly, read_weights_in};
use crate::folder::{Files, LoadError, ModelConfig, metrics_in};
use crate::{
    ActorRecognizer, BatchRecognizer, ModelError, ModelInfo, ModelKind, Prediction, Recognition,
};

/// The architectures this core runs, by torchvision name.
pub const ARCHITECTURES: &str =
    "resnet18, resnet34, resnet50, resnet101, resnet152, mobilenet_v2, efficientnet_b0";

/// The most labels a prediction lists.
pub const MAX_PREDICTIONS: usize = 10;

/// Weight file names a model folder may hold, in order of preference.
const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.pth",
    "model.pt",
    "pytorch_model.bin",
];

/// A network and its configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    ResNet(resnet::Config),
    MobileNetV2 { classes: usize },
    EfficientNetB0 { classes: usize },
}

impl Architecture {
    /// A named architecture with the class count the weights' head has.
    pub fn named(name: &str, tensors: &NamedTensors) -> Result<Self, NetworkError> {
        let head = |tensor: &'static str| {
            rows(tensors, tensor).ok_or_else(|| NetworkError::MissingHead {
                architecture: name.to_string(),
                tensor,
            })
        };
        match name {
            "mobilenet_v2" => Ok(Architecture::MobileNetV2 {
                classes: head("classifier.1.weight")?,
            }),
            "efficientnet_b0" => Ok(Architecture::EfficientNetB0 {
                classes: head("classifier.1.weight")?,
            }),
            _ => {
                let Some(preset) = resnet::Config::named(name, 0) else {
                    return Err(NetworkError::UnknownArchitecture(name.to_string()));
                };
                Ok(Architecture::ResNet(resnet::Config {
                    classes: head("fc.weight")?,
                    ..preset
                }))
            }
        }
    }

    /// The architecture the tensor names and shapes describe.
    pub fn infer(tensors: &NamedTensors) -> Option<Self> {
        let has = |name: &str| tensors.contains_key(name);
        if let Some(classes) = rows(tensors, "fc.weight") {
            return resnet::Config::infer(has, classes).map(Architecture::ResNet);
        }
        let classes = rows(tensors, "classifier.1.weight")?;
        if has("features.1.conv.0.0.weight") {
            Some(Architecture::MobileNetV2 { classes })
        } else if has("features.1.0.block.0.0.weight") {
            Some(Architecture::EfficientNetB0 { classes })
        } else {
            None
        }
    }

    pub fn name(&self) -> String {
        match self {
            Architecture::ResNet(config) => config.name(),
            Architecture::MobileNetV2 { .. } => "mobilenet_v2".into(),
            Architecture::EfficientNetB0 { .. } => "efficientnet_b0".into(),
        }
    }

    pub fn classes(&self) -> usize {
        match self {
            Architecture::ResNet(config) => config.classes,
            Architecture::MobileNetV2 { classes } | Architecture::EfficientNetB0 { classes } => {
                *classes
            }
        }
    }

    /// The prefix of the head's tensors (`fc`, `classifier.1`).
    pub fn head_prefix(&self) -> &'static str {
        match self {
            Architecture::ResNet(_) => "fc",
            Architecture::MobileNetV2 { .. } | Architecture::EfficientNetB0 { .. } => {
                "classifier.1"
            }
        }
    }

    /// The same network with another number of classes (a new head).
    pub fn with_classes(&self, classes: usize) -> Self {
        match self {
            Architecture::ResNet(config) => Architecture::ResNet(resnet::Config {
                classes,
                ..config.clone()
            }),
            Architecture::MobileNetV2 { .. } => Architecture::MobileNetV2 { classes },
            Architecture::EfficientNetB0 { .. } => Architecture::EfficientNetB0 { classes },
        }
    }

    /// The network built from `vb` with another convolution layer, e.g. a
    /// trainable one whose BatchNorm runs in training mode.
    pub fn build_with<C: ConvLayer + 'static>(
        &self,
        vb: VarBuilder,
    ) -> Result<Box<dyn Network>, NetworkError> {
        let built: candle_core::Result<Box<dyn Network>> = match self {
            Architecture::ResNet(config) => {
                ResNet::<C>::load(vb, config).map(|n| Box::new(n) as Box<dyn Network>)
            }
            Architecture::MobileNetV2 { classes } => {
                MobileNetV2::<C>::load(vb, *classes).map(|n| Box::new(n) as Box<dyn Network>)
            }
            Architecture::EfficientNetB0 { .. } => {
                return Err(NetworkError::ServingOnly(self.name()));
            }
        };
        built.map_err(NetworkError::Layers)
    }

    /// Builds the network on `device` from the tensors, all of them and
    /// only them.
    pub fn build(
        &self,
        tensors: NamedTensors,
        device: &Device,
    ) -> Result<Box<dyn Network>, NetworkError> {
        Ok(match self {
            Architecture::ResNet(config) => Box::new(build_exactly(tensors, device, |vb| {
                ResNet::<ConvNorm>::load(vb, config)
            })?),
            Architecture::MobileNetV2 { classes } => {
                Box::new(build_exactly(tensors, device, |vb| {
                    MobileNetV2::<ConvNorm>::load(vb, *classes)
                })?)
            }
            Architecture::EfficientNetB0 { classes } => {
                Box::new(build_exactly(tensors, device, |vb| {
                    EfficientNet::load_b0(vb, *classes)
                })?)
            }
        })
    }
}

fn rows(tensors: &NamedTensors, name: &str) -> Option<usize> {
    tensors.get(name).and_then(|t| t.dims().first().copied())
}

/// What the caller knows that the files may not say, and where the
/// network runs.
#[derive(Clone, Debug)]
pub struct ClassifierOptions {
    /// Overrides the architecture in the config or read from the weights.
    pub architecture: Option<String>,
    /// Labels in class order, when neither `config.json` nor `labels.txt` has them.
    pub labels: Option<Vec<String>>,
    /// Where the weights live and the arithmetic runs.
    pub device: Device,
}

impl ClassifierOptions {
    /// Nothing known beyond the files, the network on `device`.
    pub fn on(device: Device) -> Self {
        ClassifierOptions {
            architecture: None,
            labels: None,
            device,
        }
    }
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions::on(Device::Cpu)
    }
}

/// A loaded classifier that answers with labelled probabilities.
pub struct ImageClassifier {
    network: Box<dyn Network>,
    architecture: Architecture,
    labels: Vec<String>,
    preprocess: Preprocess,
    info: ModelInfo,
    weights: Option<PathBuf>,
    /// Its folder, or its one weights file, when read from disk.
    location: Option<PathBuf>,
    /// Where the network's weights live: photos go there.
    device: Device,
}

impl std::fmt::Debug for ImageClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageClassifier")
            .field("info", &self.info)
            .finish()
    }
}

impl ImageClassifier {
    /// Loads a model folder (config.json optional) or a single weights file.
    pub fn load(path: &Path, options: &ClassifierOptions) -> Result<Self, LoadError> {
        Self::load_from(&Files::Disk, path, options)
    }

    /// [`ImageClassifier::load`] from `files`.
    pub fn load_from(
        files: &Files,
        path: &Path,
        options: &ClassifierOptions,
    ) -> Result<Self, LoadError> {
        let (folder, weights_path) = locate(files, path)?;
        let config = match &folder {
            Some(folder) if files.is_file(&folder.join("config.json")) => {
                Some(ModelConfig::read_from(files, &folder.join("config.json"))?)
            }
            _ => None,
        };
        let unusable = |reason: String| LoadError::Weights {
            path: weights_path.clone(),
            reason,
        };
        let network_error = |source| LoadError::Network {
            path: weights_path.clone(),
            source,
        };
        let tensors = read_weights_in(files, &weights_path)?;
        let named = options.architecture.clone().or_else(|| {
            config
                .as_ref()
                .map(|c| c.architecture.clone())
                .filter(|a| !a.is_empty() && a != "auto")
        });
        let architecture = match named {
            Some(name) => Architecture::named(&name, &tensors).map_err(network_error)?,
            None => Architecture::infer(&tensors).ok_or_else(|| {
                unusable(format!(
                    "its tensor names match none of {ARCHITECTURES}: name the architecture with --arch or in config.json"
                ))
            })?,
        };
        let labels = labels(
            files,
            folder.as_deref(),
            config.as_ref(),
            options,
            architecture.classes(),
        )?;
        let preprocess = config
            .as_ref()
            .and_then(|c| c.preprocess.clone())
            .unwrap_or_default();
        preprocess.check().map_err(|reason| LoadError::Config {
            path: path.join("config.json"),
            reason,
        })?;
        let network = architecture
            .build(tensors, &options.device)
            .map_err(network_error)?;
        let stem = weights_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let folder_name = folder
            .as_ref()
            .and_then(|f| f.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let info = ModelInfo {
            task: ModelKind::ImageClassification,
            name: config
                .as_ref()
                .and_then(|c| c.name.clone())
                .or(folder_name)
                .or(stem)
                .unwrap_or_else(|| "classifier".into()),
            version: config
                .as_ref()
                .and_then(|c| c.version.clone())
                .unwrap_or_else(|| "local".into()),
            architecture: architecture.name(),
            source: config
                .as_ref()
                .and_then(|c| c.source.clone())
                .unwrap_or_else(|| path.display().to_string()),
            labels: labels.clone(),
            metrics: match &folder {
                Some(folder) => metrics_in(files, folder)?,
                None => Default::default(),
            },
            language: None,
        };
        Ok(ImageClassifier {
            network,
            architecture,
            labels,
            preprocess,
            info,
            location: matches!(files, Files::Disk)
                .then(|| folder.clone().unwrap_or_else(|| weights_path.clone())),
            weights: Some(weights_path),
            device: options.device.clone(),
        })
    }

    /// A classifier on the CPU from tensors in memory, such as a network in
    /// training.
    pub fn from_tensors(
        architecture: Architecture,
        tensors: NamedTensors,
        labels: Vec<String>,
        preprocess: Preprocess,
    ) -> Result<Self, NetworkError> {
        if labels.len() != architecture.classes() {
            return Err(NetworkError::LabelCount {
                labels: labels.len(),
                classes: architecture.classes(),
            });
        }
        let network = architecture.build(tensors, &Device::Cpu)?;
        let info = ModelInfo {
            task: ModelKind::ImageClassification,
            name: architecture.name(),
            version: "in memory".into(),
            architecture: architecture.name(),
            source: "in memory".into(),
            labels: labels.clone(),
            metrics: Default::default(),
            language: None,
        };
        Ok(ImageClassifier {
            network,
            architecture,
            labels,
            preprocess,
            info,
            weights: None,
            location: None,
            device: Device::Cpu,
        })
    }

    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The file the weights were read from (none for tensors in memory).
    pub fn weights_path(&self) -> Option<&Path> {
        self.weights.as_deref()
    }

    /// The pooled features the head reads, `(batch, features)`, for a
    /// batch of preprocessed photos.
    pub fn features(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        self.network.features(&input.to_device(&self.device)?)
    }

    /// Class probabilities in label order.
    pub fn probabilities(&self, photo: &DynamicImage) -> candle_core::Result<Vec<f32>> {
        let input = self.preprocess.tensor(photo)?;
        Ok(self.batch_probabilities(&[input])?.remove(0))
    }

    /// Class probabilities in label order for each of a batch of
    /// preprocessed `(1, 3, crop, crop)` photos, from one forward pass.
    fn batch_probabilities(&self, inputs: &[Tensor]) -> candle_core::Result<Vec<Vec<f32>>> {
        let batch = Tensor::cat(inputs, 0)?.to_device(&self.device)?;
        let logits = self.network.forward(&batch)?;
        candle_nn::ops::softmax_last_dim(&logits)?.to_vec2()
    }

    /// Raw scores before the softmax, for parity checks.
    pub fn logits(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        self.network.forward(&input.to_device(&self.device)?)
    }

    fn tensor_error(&self, error: candle_core::Error) -> ModelError {
        ModelError::tensors(self.info.name.clone(), error)
    }
}

impl ActorRecognizer for ImageClassifier {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn recognize(&self, photo: &DynamicImage) -> Result<Recognition, ModelError> {
        let input = self.input(photo)?;
        Ok(self.recognize_inputs(&[input])?.remove(0))
    }

    fn location(&self) -> Option<&Path> {
        self.location.as_deref()
    }

    fn batching(&self) -> Option<&dyn BatchRecognizer> {
        Some(self)
    }
}

impl BatchRecognizer for ImageClassifier {
    fn input(&self, photo: &DynamicImage) -> Result<Tensor, ModelError> {
        self.preprocess
            .tensor(photo)
            .map_err(|e| self.tensor_error(e))
    }

    fn recognize_inputs(&self, inputs: &[Tensor]) -> Result<Vec<Recognition>, ModelError> {
        let probabilities = self
            .batch_probabilities(inputs)
            .map_err(|e| self.tensor_error(e))?;
        Ok(probabilities
            .iter()
            .map(|p| Recognition {
                predictions: ranked(&self.labels, p),
                faces: Vec::new(),
            })
            .collect())
    }
}

/// Labels with their scores, highest first, at most [`MAX_PREDICTIONS`].
pub fn ranked(labels: &[String], scores: &[f32]) -> Vec<Prediction> {
    let mut predictions: Vec<Prediction> = labels
        .iter()
        .zip(scores)
        .map(|(label, &score)| Prediction {
            label: label.clone(),
            score,
        })
        .collect();
    predictions.sort_by(|a, b| b.score.total_cmp(&a.score));
    predictions.truncate(MAX_PREDICTIONS);
    predictions
}

/// The folder (if any) and the weights file a path names.
fn locate(files: &Files, path: &Path) -> Result<(Option<PathBuf>, PathBuf), LoadError> {
    if files.is_file(path) {
        return Ok((path.parent().map(Path::to_path_buf), path.to_path_buf()));
    }
    if !files.is_dir(path) {
        return Err(LoadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        });
    }
    WEIGHT_FILES
        .iter()
        .map(|name| path.join(name))
        .find(|p| files.is_file(p))
        .map(|weights| (Some(path.to_path_buf()), weights))
        .ok_or_else(|| LoadError::MissingWeights {
            folder: path.to_path_buf(),
            expected: WEIGHT_FILES.join(" or "),
        })
}

/// Labels from config.json, else labels.txt beside the weights, else the
/// caller; a model without any gets `class N`.
fn labels(
    files: &Files,
    folder: Option<&Path>,
    config: Option<&ModelConfig>,
    options: &ClassifierOptions,
    classes: usize,
) -> Result<Vec<String>, LoadError> {
    let from_file = folder
        .map(|f| f.join("labels.txt"))
        .filter(|p| files.is_file(p));
    let (labels, origin) =
        if let Some(labels) = config.map(|c| c.labels.clone()).filter(|l| !l.is_empty()) {
            (labels, folder.map(|f| f.join("config.json")))
        } else if let Some(path) = from_file {
            let labels = files
                .read_text(&path)?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            (labels, Some(path))
        } else if let Some(labels) = options.labels.clone() {
            (labels, None)
        } else {
            return Ok((0..classes).map(|i| format!("class {i}")).collect());
        };
    if labels.len() != classes {
        return Err(LoadError::Labels {
            origin: origin.map_or_else(|| "--labels".to_string(), |p| p.display().to_string()),
            found: labels.len(),
            classes,
        });
    }
    Ok(labels)
}
