//! Starcast's training side: the dataset reader (the class order it
//! records is what the served model's labels come from, so nobody types a
//! `labels` list by hand again), augmentation, the fine-tuning loop for the
//! actor classifier, and the evaluation that promotion relies on.

mod augment;
mod checkpoint;
mod classifier;
mod curves;
mod epochs;
mod error;
mod evaluate;
mod gallery;
pub mod image_folder;
mod language;
mod metrics;
mod optimizer;
mod reading;
mod schedule;
mod split;
mod text_eval;
mod trainable;

pub use augment::Augment;
pub use checkpoint::CheckpointError;
pub use classifier::{Method, SkippedPhoto, TrainOptions, TrainedClassifier, fine_tune};
pub use curves::EpochRecord;
pub use epochs::Progress;
pub use error::TrainError;
pub use evaluate::{EvaluateError, NO_ANSWER, evaluate_recognizer};
pub use gallery::{GalleryError, write_gallery};
pub use image_folder::{ImageFolder, ImageFolderError};
pub use language::{
    LanguageEpoch, LanguageOptions, LanguageReport, LoraOptions, TrainedLanguageModel,
    fine_tune_language,
};
pub use metrics::{ClassMetrics, ClassificationReport};
pub use optimizer::{AdamW, ParamsAdamW};
pub use reading::{Criterion, ReadingReport, failed_criteria, reading_check};
pub use schedule::WarmupCosine;
pub use split::{SplitError, stratified_split};
pub use text_eval::{
    HoroscopeText, SettingReport, TextReport, distinct_2, evaluate_writer, perplexity,
};
pub use trainable::TrainingConvNorm;
