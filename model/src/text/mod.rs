//! Horoscope generation with language models: prompts per model family,
//! sampling, cleaning and cutting, the daily seed, a cache, and loading.

mod attention;
mod blocks;
mod cache;
mod clean;
mod embedder;
mod frozen;
mod gemma3;
mod gpt2;
mod kernels;
mod kquants;
mod linear;
mod llama;
mod load;
mod lora;
mod prompt;
mod sampler;
mod seed;
mod t5;
mod tokenizer;
mod writer;

pub use attention::{Cache, NextLogits};
pub use cache::{CACHED_HOROSCOPES, CachedWriter};
pub use clean::{MAX_CHARS, MIN_CHARS, clean_text, cut_to_length, shape_horoscope};
pub use embedder::{SentenceEmbedder, cosine};
pub use gemma3::{Gemma3, Gemma3Config};
pub use gpt2::{Gpt2, Gpt2Config};
pub use kernels::cross_entropy;
pub use linear::Lora;
pub use llama::{Kernels, Llama, LlamaConfig, PROJECTIONS, projection_path};
pub use load::{
    SaveError, horoscope_writer, load_gemma3, load_horoscope_writer, load_llama,
    load_quantized_llama, save_llama,
};
pub use lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, adapter_tensor, attach_adapters};
pub use prompt::{Prompt, PromptStyle, horoscope_prompt};
pub use sampler::{Sampler, SamplingSettings};
pub use seed::daily_seed;
pub use t5::{T5, T5Config};
pub use tokenizer::tokenizer_from_gguf;
pub use writer::{DecodeSession, Decoder, LanguageModel, stop_tokens};
