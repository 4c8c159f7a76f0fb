//! Image classification: weights from PyTorch or safetensors files,
//! torchvision's networks and preprocessing.

mod classifier;
mod efficientnet;
mod layers;
mod mobilenet_v2;
mod pickle;
mod preprocess;
mod pth;
mod resample;
mod resnet;
mod weights;

pub use classifier::{
    ARCHITECTURES, Architecture, ClassifierOptions, ImageClassifier, MAX_PREDICTIONS, ranked,
};
pub use preprocess::Preprocess;
pub use pth::{PthError, read_pth};
pub use weights::{NamedTensors, read_weights};
