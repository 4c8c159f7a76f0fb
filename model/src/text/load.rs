//! Which horoscope model a folder holds, and loading it: a Llama (quantized
//! GGUF, full-precision safetensors, or LoRA adapters over a base model), a
//! GPT-2 or a T5; and writing a full-precision Llama.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use tokenizers::Tokenizer;

use super::cache::{CACHED_HOROSCOPES, CachedWriter};
use super::gemma3::Gemma3;
use super::gpt2::Gpt2;
use super::llama::{Llama, LlamaConfig};
use super::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, attach_adapters};
use super::prompt::PromptStyle;
use super::t5::T5;
use super::tokenizer::tokenizer_from_gguf;
use super::writer::{Decoder, LanguageModel};
use crate::folder::{Files, LoadError, ModelConfig, ModelFolder, ReadSeek};
use crate::{HoroscopeWriter, ModelKind, without_backtrace};

/// Loads the horoscope model in a model folder onto `device`, with a cache
/// in front. A GGUF is served as stored on the CPU; elsewhere it is
/// dequantized to F32 (this crate's block products are CPU kernels).
pub fn load_horoscope_writer(
    path: &Path,
    device: &Device,
) -> Result<Arc<dyn HoroscopeWriter>, LoadError> {
    horoscope_writer(&ModelFolder::open(path)?, device)
}

/// [`load_horoscope_writer`] for an opened folder.
pub fn horoscope_writer(
    folder: &ModelFolder,
    device: &Device,
) -> Result<Arc<dyn HoroscopeWriter>, LoadError> {
    let folder = folder.clone();
    if folder.config.task != ModelKind::TextGeneration {
        return Err(LoadError::Config {
            path: folder.path.join("config.json"),
            reason: format!("its task is {:?}, not text-generation", folder.config.task),
        });
    }
    let architecture = folder.config.architecture.as_str();
    let model = match architecture {
        "llama" if is_quantized(&folder) && device.is_cpu() => load_quantized_llama(&folder)?,
        "llama" => {
            let (llama, tokenizer) = load_llama(&folder)?;
            let llama = if device.is_cpu() {
                llama
            } else {
                llama.to_device(device).map_err(|e| LoadError::Weights {
                    path: folder.path.clone(),
                    reason: format!("could not move it to the GPU ({})", without_backtrace(&e)),
                })?
            };
            language_model(&folder, Box::new(llama), tokenizer, PromptStyle::Chat)
        }
        "gemma3" => load_gemma3(&folder)?,
        "gpt2" => {
            let files = folder.files("safetensors")?;
            let config = read_hyperparameters(&folder, "a GPT-2")?;
            let gpt2 =
                Gpt2::from_safetensors(config, &files, device).map_err(weights_error(&files[0]))?;
            let tokenizer = load_tokenizer(&folder)?;
            language_model(&folder, Box::new(gpt2), tokenizer, PromptStyle::Horoscope)
        }
        "t5" => {
            let files = folder
                .files("safetensors")
                .or_else(|_| folder.files("bin"))
                .map_err(|_| LoadError::MissingWeights {
                    folder: folder.path.clone(),
                    expected: ".safetensors or pytorch_model.bin".into(),
                })?;
            let config = read_hyperparameters(&folder, "a T5")?;
            let t5 = T5::load(config, &files, device).map_err(weights_error(&files[0]))?;
            let tokenizer = load_tokenizer(&folder)?;
            language_model(&folder, Box::new(t5), tokenizer, PromptStyle::SignName)
        }
        _ => {
            return Err(LoadError::Unsupported {
                task: "horoscope",
                architecture: architecture.to_string(),
                supported: "llama (GGUF, safetensors or LoRA adapters), gemma3 (GGUF), gpt2 or t5",
            });
        }
    };
    Ok(Arc::new(CachedWriter::new(
        Arc::new(model),
        CACHED_HOROSCOPES,
    )))
}

/// The folder's GGUF served quantized as stored, with the tokenizer the
/// file carries.
pub fn load_quantized_llama(folder: &ModelFolder) -> Result<LanguageModel, LoadError> {
    let path = folder.weights("gguf")?;
    let (mut file, content, tokenizer) = open_gguf(folder, &path)?;
    let llama = Llama::from_gguf_quantized(&content, &mut file).map_err(weights_error(&path))?;
    Ok(language_model(
        folder,
        Box::new(llama),
        tokenizer,
        PromptStyle::Chat,
    ))
}

/// The folder's Gemma 3 GGUF served as stored, with its own tokenizer.
pub fn load_gemma3(folder: &ModelFolder) -> Result<LanguageModel, LoadError> {
    let path = folder.weights("gguf")?;
    let (mut file, content, tokenizer) = open_gguf(folder, &path)?;
    let gemma = Gemma3::from_gguf_quantized(&content, &mut file).map_err(weights_error(&path))?;
    Ok(language_model(
        folder,
        Box::new(gemma),
        tokenizer,
        PromptStyle::FewShot,
    ))
}

/// A GGUF file of `folder` opened: the file, its header and the tokenizer
/// it carries.
fn open_gguf<'a>(
    folder: &'a ModelFolder,
    path: &Path,
) -> Result<(Box<dyn ReadSeek + 'a>, gguf_file::Content, Tokenizer), LoadError> {
    let error = weights_error(path);
    let mut file = folder.files.reader(path)?;
    let mut content = gguf_file::Content::read(&mut file).map_err(&error)?;
    let tokenizer = tokenizer_from_gguf(&content).map_err(|reason| LoadError::Weights {
        path: path.to_path_buf(),
        reason,
    })?;
    // The vocabulary's arrays (52 MB for Gemma's 262,144 tokens) are done
    // with: their memory goes to the weights read next.
    content
        .metadata
        .retain(|key, _| !key.starts_with("tokenizer."));
    Ok((file, content, tokenizer))
}

fn weights_error(path: &Path) -> impl Fn(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Weights {
        path: path.to_path_buf(),
        reason: without_backtrace(&e),
    }
}

/// A folder whose weights are a GGUF file and nothing else: served
/// quantized. Adapters over a GGUF base are merged into F32 weights.
fn is_quantized(folder: &ModelFolder) -> bool {
    !folder.has(ADAPTER_CONFIG) && folder.weights("gguf").is_ok()
}

/// The folder's Llama in F32 and its tokenizer: safetensors of any float
/// type, a GGUF dequantized, or a base model with the folder's adapters
/// folded in. Fine-tuning starts from this.
pub fn load_llama(folder: &ModelFolder) -> Result<(Llama, Tokenizer), LoadError> {
    if let Some(config) = AdapterConfig::in_folder(&folder.path)? {
        return load_adapted(folder, &config);
    }
    if let Ok(path) = folder.weights("gguf") {
        let (mut file, content, tokenizer) = open_gguf(folder, &path)?;
        let llama = Llama::from_gguf(&content, &mut file).map_err(weights_error(&path))?;
        return Ok((llama, tokenizer));
    }
    let files = folder
        .files("safetensors")
        .map_err(|_| LoadError::MissingWeights {
            folder: folder.path.clone(),
            expected: ".gguf or .safetensors".into(),
        })?;
    let config: LlamaConfig = read_hyperparameters(folder, "a safetensors Llama")?;
    let tokenizer = load_tokenizer(folder)?;
    let llama = Llama::from_safetensors(config, &files).map_err(weights_error(&files[0]))?;
    Ok((llama, tokenizer))
}

fn load_adapted(
    folder: &ModelFolder,
    config: &AdapterConfig,
) -> Result<(Llama, Tokenizer), LoadError> {
    let base_path = base_folder(&config.base_model_name_or_path)?;
    if base_path.join(ADAPTER_CONFIG).is_file() {
        return Err(LoadError::Config {
            path: folder.path.join(ADAPTER_CONFIG),
            reason: format!(
                "its base model {} is itself an adapter: name the full model it was trained on",
                base_path.display()
            ),
        });
    }
    let base = ModelFolder::open(&base_path)?;
    let (mut llama, base_tokenizer) = load_llama(&base)?;
    let weights = folder.path.join(ADAPTER_WEIGHTS);
    attach_adapters(&mut llama, config, &weights)
        .and_then(|()| llama.merge_lora())
        .map_err(weights_error(&weights))?;
    let tokenizer = if folder.has("tokenizer.json") {
        load_tokenizer(folder)?
    } else {
        base_tokenizer
    };
    Ok((llama, tokenizer))
}

/// A writer over `decoder`, asked in the folder's prompt format or the
/// family's usual one.
fn language_model(
    folder: &ModelFolder,
    decoder: Box<dyn Decoder>,
    tokenizer: Tokenizer,
    usual: PromptStyle,
) -> LanguageModel {
    let prompt = folder.config.prompt.unwrap_or(usual);
    let model = LanguageModel::new(folder.info(), decoder, tokenizer, prompt);
    match folder.files {
        Files::Disk => model.at(folder.path.clone()),
        Files::Memory { .. } => model,
    }
}

/// The family's hyperparameters from `config.json`, as transformers writes them.
fn read_hyperparameters<T: serde::de::DeserializeOwned>(
    folder: &ModelFolder,
    family: &str,
) -> Result<T, LoadError> {
    let path = folder.path.join("config.json");
    let error = |e: serde_json::Error| LoadError::Config {
        path: path.clone(),
        reason: format!("{family} needs Hugging Face's hyperparameters in config.json ({e})"),
    };
    let mut config: serde_json::Value =
        serde_json::from_str(&folder.files.read_text(&path)?).map_err(error)?;
    // transformers 5 writes `rope_theta` inside `rope_parameters`.
    if let Some(theta) = config.pointer("/rope_parameters/rope_theta").cloned()
        && let Some(fields) = config.as_object_mut()
    {
        fields.entry("rope_theta").or_insert(theta);
    }
    serde_json::from_value(config).map_err(error)
}

/// A base model's location: a folder, or `hf://user/repo` when the Hub is
/// compiled in.
fn base_folder(location: &str) -> Result<PathBuf, LoadError> {
    #[cfg(feature = "hub")]
    {
        // PEFT names the base by its Hub repo id, `user/name`; a folder of
        // that name here comes first.
        let is_repo_id = location.split('/').count() == 2
            && !location.starts_with(['.', '/'])
            && !location.contains(':');
        if is_repo_id && !Path::new(location).exists() {
            return crate::hub::local_model(Path::new(&format!("hf://{location}")));
        }
        crate::hub::local_model(Path::new(location))
    }
    #[cfg(not(feature = "hub"))]
    {
        Ok(PathBuf::from(location))
    }
}

fn load_tokenizer(folder: &ModelFolder) -> Result<Tokenizer, LoadError> {
    let path = folder.path.join("tokenizer.json");
    if !folder.has("tokenizer.json") {
        return Err(LoadError::MissingWeights {
            folder: folder.path.clone(),
            expected: "tokenizer.json (copy the base model's tokenizer.json into the folder)"
                .into(),
        });
    }
    Tokenizer::from_bytes(folder.files.read(&path)?).map_err(|e| LoadError::Weights {
        path,
        reason: format!("not a tokenizers file: {e}"),
    })
}

/// Writes `llama` as a Hugging Face-style folder in `dtype`: the weights
/// as `model.safetensors`, `tokenizer.json`, and a `config.json` that
/// holds both Starcast's fields (`config`: task, name, prompt, ...) and
/// the hyperparameters transformers reads.
pub fn save_llama(
    dir: &Path,
    llama: &Llama,
    tokenizer: &Tokenizer,
    dtype: DType,
    mut config: ModelConfig,
) -> Result<(), SaveError> {
    let weights = dir.join("model.safetensors");
    llama
        .named_weights()
        .and_then(|named| {
            named
                .into_iter()
                .map(|(name, tensor)| Ok((name, tensor.to_dtype(dtype)?)))
                .collect::<candle_core::Result<HashMap<_, _>>>()
        })
        .and_then(|tensors| candle_core::safetensors::save(&tensors, &weights))
        .map_err(|e| SaveError::Weights {
            path: weights,
            reason: e.to_string(),
        })?;
    let mut hyperparameters = serde_json::to_value(llama.config())
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    hyperparameters.insert("model_type".into(), "llama".into());
    hyperparameters.insert(
        "architectures".into(),
        serde_json::json!(["LlamaForCausalLM"]),
    );
    hyperparameters.insert("torch_dtype".into(), torch_dtype(dtype).into());
    config.extra.extend(hyperparameters);
    let path = dir.join("config.json");
    config
        .write(&path)
        .map_err(|source| SaveError::Io { path, source })?;
    let path = dir.join("tokenizer.json");
    tokenizer
        .save(&path, false)
        .map_err(|e| SaveError::Weights {
            path,
            reason: e.to_string(),
        })
}

/// transformers' name of a float type.
fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

/// Why a model folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("could not write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write {path}: {reason}")]
    Weights { path: PathBuf, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rotary_base_where_transformers_5_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "model_type": "llama", "vocab_size": 64, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let folder = ModelFolder::open(dir.path()).unwrap();
        let config: LlamaConfig = read_hyperparameters(&folder, "a Llama").unwrap();
        assert_eq!(config.rope_theta, 100000.0);
    }
}
