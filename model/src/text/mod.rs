//! Horoscope generation with language models: prompts per model family,
//! sampling, cleaning and cutting, the daily seed, a cache, and loading.

mod cache;
mod clean;
mod embedder;
mod prompt;
mod quantized_llama;
mod sampler;
mod seed;

use std::path::Path;
use std::sync::Arc;

pub use cache::{CACHED_HOROSCOPES, CachedWriter};
pub use clean::{MAX_CHARS, MIN_CHARS, clean_text, cut_to_length, shape_horoscope};
pub use embedder::{SentenceEmbedder, cosine};
pub use prompt::{PromptStyle, horoscope_prompt};
pub use quantized_llama::{QuantizedLlama, load_weights};
pub use sampler::{Sampler, SamplingSettings};
pub use seed::daily_seed;

use crate::folder::{LoadError, ModelFolder};
use crate::{HoroscopeWriter, Task};

/// Loads the horoscope model in a model folder, with a cache in front.
pub fn load_horoscope_writer(path: &Path) -> Result<Arc<dyn HoroscopeWriter>, LoadError> {
    let folder = ModelFolder::open(path)?;
    let unsupported = || LoadError::Unsupported {
        task: "horoscope",
        architecture: folder.config.architecture.clone(),
        supported: "a Llama-architecture GGUF file (architecture \"llama\")",
    };
    if folder.config.task != Task::TextGeneration {
        return Err(LoadError::Config {
            path: path.join("config.json"),
            reason: format!("its task is {:?}, not text-generation", folder.config.task),
        });
    }
    let writer: Arc<dyn HoroscopeWriter> = match folder.config.architecture.as_str() {
        "llama" => Arc::new(QuantizedLlama::load(&folder)?),
        _ => return Err(unsupported()),
    };
    Ok(Arc::new(CachedWriter::new(writer, CACHED_HOROSCOPES)))
}
