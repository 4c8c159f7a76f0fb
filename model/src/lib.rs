//! Starcast's inference core. It knows nothing of HTTP: the server hands it
//! photos and horoscope requests and shows what it returns.
//!
//! With default features off, only the data types remain, so the WASM front
//! end shares them with the server.

pub mod actors;
#[cfg(feature = "runtime")]
pub mod faces;
#[cfg(feature = "runtime")]
pub mod folder;
pub mod horoscope;
#[cfg(feature = "hub")]
pub mod hub;
pub mod info;
#[cfg(feature = "runtime")]
pub mod kernels;
pub mod language;
#[cfg(feature = "runtime")]
pub mod photo;
#[cfg(feature = "runtime")]
mod served;
#[cfg(feature = "runtime")]
pub mod text;
#[cfg(feature = "runtime")]
pub mod vision;
pub mod zodiac;

#[cfg(feature = "runtime")]
pub use actors::{
    ActorRecognizer, BatchRecognizer, load_actor_recognizer, load_actor_recognizer_from,
};
pub use actors::{ActorReport, Face, Prediction, Recognition};
pub use horoscope::{
    Horoscope, HoroscopeQuery, HoroscopeRequest, HoroscopeWriter, InvalidRequest, Streamed,
    TextScore,
};
pub use info::{ModelInfo, ModelKind};
pub use language::{Language, UnknownLanguage};
#[cfg(feature = "runtime")]
pub use served::{Models, ServedModels, writes};
pub use zodiac::{UnknownSign, ZodiacSign};

/// A model failed while running.
#[derive(Debug, thiserror::Error)]
#[error("the model '{model}' failed: {reason}")]
pub struct ModelError {
    pub model: String,
    /// The failure in words, for the user.
    pub reason: String,
    /// The error underneath, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ModelError {
    /// A failure that is its own explanation.
    pub fn new(model: impl Into<String>, reason: impl Into<String>) -> Self {
        ModelError {
            model: model.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// A failure of the tensor code: its sentence, and the error kept.
    #[cfg(feature = "runtime")]
    pub fn tensors(model: impl Into<String>, error: candle_core::Error) -> Self {
        ModelError {
            model: model.into(),
            reason: without_backtrace(&error),
            source: Some(Box::new(error)),
        }
    }
}

/// A candle error in words, without the backtrace candle attaches when
/// `RUST_BACKTRACE` is set: users read these.
#[cfg(feature = "runtime")]
pub(crate) fn without_backtrace(error: &candle_core::Error) -> String {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(inner),
        other => other.to_string(),
    }
}
