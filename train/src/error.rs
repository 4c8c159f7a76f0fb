//! Why a training run stopped, for both training loops.

use std::path::PathBuf;

use starcast_model::text::SaveError;
use starcast_model::vision::NetworkError;

use crate::checkpoint::CheckpointError;
use crate::split::SplitError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("the training failed in the tensor code: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("could not write the model to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write the model to {path}: {source}")]
    WriteTensors {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error(transparent)]
    Save(#[from] SaveError),
    #[error("the dataset has no photo that could be decoded")]
    NoPhotos,
    #[error("the network can't be trained this way: {0}")]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("the tokenizer failed: {0}")]
    Tokenizer(#[source] tokenizers::Error),
    #[error(
        "the prompt alone takes {prompt_tokens} tokens: raise the token limit above {max_tokens}"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        max_tokens: usize,
    },
    #[error(
        "{texts} horoscopes leave nothing to train on after holding out {held_out}: collect more or hold out fewer"
    )]
    TooFewHoroscopes { texts: usize, held_out: usize },
}
