//! What the app tells people about a served model: its task, where it came
//! from, its labels and its evaluation metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Language;

/// What a model does, as written in a model folder's `config.json`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    ImageClassification,
    FaceEmbedding,
    TextGeneration,
}

impl ModelKind {
    /// The task in words for people.
    pub fn describe(self) -> &'static str {
        match self {
            ModelKind::ImageClassification => "actor recognition (classifier)",
            ModelKind::FaceEmbedding => "actor recognition (face gallery)",
            ModelKind::TextGeneration => "horoscope generation",
        }
    }
}

/// One served model version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub task: ModelKind,
    /// A short name people recognise, e.g. `resnet18-actors`.
    pub name: String,
    /// The registry version or Hub revision; `local` for a folder on disk.
    pub version: String,
    pub architecture: String,
    /// Where the weights were loaded from: a path or `hf://user/repo@rev`.
    pub source: String,
    /// Class labels in index order (empty for text models).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Evaluation metrics from the folder's `metrics.json`.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// The language a horoscope model writes (none for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
}
