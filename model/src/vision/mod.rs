//! Image classification: weights from PyTorch or safetensors files,
//! torchvision's networks and preprocessing.

mod classifier;
mod conv;
mod efficientnet;
mod error;
pub(crate) mod layers;
mod mobilenet_v2;
mod pickle;
mod preprocess;
mod pth;
mod resample;
mod resnet;
mod tfjs;
pub(crate) mod weights;

pub use classifier::{
    ARCHITECTURES, Architecture, ClassifierOptions, ImageClassifier, MAX_PREDICTIONS, ranked,
};
pub use error::NetworkError;
pub use layers::{
    Activation, ConvLayer, ConvNorm, ConvShape, Network, depthwise_by_taps, is_depthwise,
};
pub use preprocess::Preprocess;
pub use pth::{PthError, read_pth};
pub use tfjs::read_tfjs;
pub use weights::{NamedTensors, read_weights, read_weights_in};
