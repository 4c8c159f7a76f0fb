//! Why a network could not be built from a set of tensors.

use super::classifier::ARCHITECTURES;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("unknown architecture '{0}': use one of {ARCHITECTURES}")]
    UnknownArchitecture(String),
    #[error("the weights have no {tensor}, which a {architecture} classifier head needs")]
    MissingHead {
        architecture: String,
        tensor: &'static str,
    },
    #[error(
        "{0} can only be fine-tuned head-only (its squeeze-excitation layers are serving-only here)"
    )]
    ServingOnly(String),
    #[error("{labels} labels for {classes} classes")]
    LabelCount { labels: usize, classes: usize },
    /// The tensors don't fit the layers (a missing tensor, a wrong shape).
    #[error("{}", crate::without_backtrace(.0))]
    Layers(#[source] candle_core::Error),
    #[error("unexpected tensors {shown}{more}: the file is for another architecture", more = more_text(*.more))]
    Unexpected { shown: String, more: usize },
}

fn more_text(more: usize) -> String {
    if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    }
}
