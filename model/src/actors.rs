//! Actor recognition: what a recognizer returns for a photo, and the
//! interface the vision core implements.

use serde::{Deserialize, Serialize};

/// One label with its probability.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub label: String,
    pub score: f32,
}

/// A face found in the photo, with its own predictions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// `[x, y, width, height]` in pixels of the (orientation-corrected) photo.
    #[serde(rename = "box")]
    pub bounds: [u32; 4],
    pub predictions: Vec<Prediction>,
}

/// What a recognizer says about one photo: labels for the whole photo,
/// highest first, and one entry per face when it detects faces.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recognition {
    pub predictions: Vec<Prediction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faces: Vec<Face>,
}

/// The answer to an upload: the recognition plus what the user is shown
/// about how it was made.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorReport {
    #[serde(flatten)]
    pub recognition: Recognition,
    pub width: u32,
    pub height: u32,
    /// The model name and version that answered.
    pub model: String,
    /// Decode, preprocessing and inference time in milliseconds.
    pub elapsed_ms: f64,
}

#[cfg(feature = "runtime")]
pub use runtime::{
    ActorRecognizer, BatchRecognizer, load_actor_recognizer, load_actor_recognizer_from,
};

#[cfg(feature = "runtime")]
mod runtime {
    use std::path::Path;
    use std::sync::Arc;

    use candle_core::Tensor;
    use image::DynamicImage;

    use super::Recognition;
    use crate::faces::FaceGalleryRecognizer;
    use crate::folder::{Files, LoadError, ModelFolder};
    use crate::vision::{ClassifierOptions, ImageClassifier};
    use crate::{ModelError, ModelInfo, ModelKind};

    /// Loads an actor model: a face-gallery folder (`"task": "face-embedding"`),
    /// or a classifier as a folder or a single weights file.
    pub fn load_actor_recognizer(
        path: &Path,
        options: &ClassifierOptions,
    ) -> Result<Arc<dyn ActorRecognizer>, LoadError> {
        load_actor_recognizer_from(&Files::Disk, path, options)
    }

    /// [`load_actor_recognizer`] from `files`.
    pub fn load_actor_recognizer_from(
        files: &Files,
        path: &Path,
        options: &ClassifierOptions,
    ) -> Result<Arc<dyn ActorRecognizer>, LoadError> {
        if files.is_file(&path.join("config.json")) {
            let folder = ModelFolder::open_in(files.clone(), path)?;
            match folder.config.task {
                ModelKind::FaceEmbedding => {
                    return Ok(Arc::new(FaceGalleryRecognizer::load(&folder)?));
                }
                ModelKind::TextGeneration => {
                    return Err(LoadError::Config {
                        path: path.join("config.json"),
                        reason: "it describes a text model, not an actor model".into(),
                    });
                }
                ModelKind::ImageClassification => {}
            }
        }
        Ok(Arc::new(ImageClassifier::load_from(files, path, options)?))
    }

    /// A model that says which actors are in a photo. Implementations are
    /// CPU-bound: callers run them off the async threads.
    pub trait ActorRecognizer: Send + Sync {
        fn info(&self) -> &ModelInfo;
        fn recognize(&self, photo: &DynamicImage) -> Result<Recognition, ModelError>;

        /// Where the model's files are on disk (its folder, or its one
        /// weights file), for a browser to fetch and run it itself; `None`
        /// for a model built in memory.
        fn location(&self) -> Option<&Path> {
            None
        }

        /// The model as a [`BatchRecognizer`], when photos run through it
        /// faster together than one by one.
        fn batching(&self) -> Option<&dyn BatchRecognizer> {
            None
        }
    }

    /// A whole-photo model that runs several photos as one batch, through
    /// one forward pass: the server gathers photos that arrive together.
    pub trait BatchRecognizer: Send + Sync {
        /// One photo as the network's input (resized, cropped, normalised).
        fn input(&self, photo: &DynamicImage) -> Result<Tensor, ModelError>;

        /// The answers for inputs run as one batch, in their order: each
        /// the same, to the bit, as [`ActorRecognizer::recognize`] gives
        /// for its photo alone.
        fn recognize_inputs(&self, inputs: &[Tensor]) -> Result<Vec<Recognition>, ModelError>;
    }
}
