//! Llama-architecture models in GGUF (SmolLM2-135M-Instruct is the offline
//! default), through candle's quantized Llama, with the tokenizer the GGUF
//! file carries.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokenizers::Tokenizer;

use super::prompt::PromptStyle;
use super::writer::{DecodeSession, Decoder, LanguageModel, without_backtrace};
use crate::folder::{LoadError, ModelFolder};

/// candle's quantized Llama as a [`Decoder`].
pub struct QuantizedLlama {
    weights: ModelWeights,
    context: usize,
}

/// A clone of the weights (shared) with its own attention cache.
struct QuantizedSession {
    model: ModelWeights,
    position: usize,
}

impl Decoder for QuantizedLlama {
    fn start(&self) -> Box<dyn DecodeSession + '_> {
        Box::new(QuantizedSession {
            model: self.weights.clone(),
            position: 0,
        })
    }

    fn context(&self) -> usize {
        self.context
    }
}

impl DecodeSession for QuantizedSession {
    fn feed(&mut self, tokens: &[u32]) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.model.forward(&input, self.position)?;
        self.position += tokens.len();
        logits.squeeze(0)?.to_vec1()
    }
}

pub(super) fn weights_error(path: &Path) -> impl Fn(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Weights {
        path: path.to_path_buf(),
        reason: without_backtrace(&e),
    }
}

/// Whether candle's CPU matmul runs a type without SIMD. Q4_1 (the
/// packaged SmolLM2's type) is one: its scalar dot product made generation
/// 7x slower than llama.cpp.
fn lacks_simd_kernel(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// The model's weights, with the tensors of a type that lacks a SIMD kernel
/// requantized to Q8_0 (which has one): 8 bits per weight keep the 4- and
/// 5-bit values all but exactly, and generation ran 3x faster on SmolLM2
/// (bench/text.sh), for 1.6x the memory of those tensors.
pub fn load_weights<R: Read + Seek>(
    content: gguf_file::Content,
    reader: &mut R,
) -> candle_core::Result<ModelWeights> {
    let slow = content
        .tensor_infos
        .values()
        .any(|info| lacks_simd_kernel(info.ggml_dtype));
    if !slow {
        return ModelWeights::from_gguf(content, reader, &Device::Cpu);
    }
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let tensor = content.tensor(reader, name, &Device::Cpu)?;
        let row = info.shape.dims().last().copied().unwrap_or(0);
        let tensor =
            if lacks_simd_kernel(info.ggml_dtype) && row % GgmlDType::Q8_0.block_size() == 0 {
                QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?
            } else {
                tensor
            };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    // Through a temporary file rather than memory: the requantized copy
    // then waits in the page cache, not in the process's peak memory.
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "starcast-{}-{}.gguf",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create(&path)
        .map_err(candle_core::Error::wrap)
        .and_then(|mut file| {
            gguf_file::write(&mut std::io::BufWriter::new(&mut file), &metadata, &refs)
        });
    drop(refs);
    drop(tensors);
    let loaded = written.and_then(|()| {
        let mut file = std::io::BufReader::new(File::open(&path)?);
        let content = gguf_file::Content::read(&mut file)?;
        ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
    });
    let _ = std::fs::remove_file(&path);
    loaded
}

/// A GGUF file opened: the file, its header and the tokenizer it carries.
pub(super) fn open_gguf(path: &Path) -> Result<(File, gguf_file::Content, Tokenizer), LoadError> {
    let error = weights_error(path);
    let mut file = File::open(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let content = gguf_file::Content::read(&mut file).map_err(&error)?;
    let tokenizer = Tokenizer::from_gguf(&content).map_err(&error)?;
    Ok((file, content, tokenizer))
}

impl QuantizedLlama {
    /// Loads the folder's `.gguf` file and the tokenizer inside it.
    pub fn load(folder: &ModelFolder) -> Result<LanguageModel, LoadError> {
        let path = folder.weights("gguf")?;
        let error = weights_error(&path);
        let (mut file, content, tokenizer) = open_gguf(&path)?;
        // candle's quantized Llama has rotary tables for MAX_SEQ_LEN positions.
        let context = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_SEQ_LEN, |n| (n as usize).min(MAX_SEQ_LEN));
        let weights = load_weights(content, &mut file).map_err(&error)?;
        Ok(LanguageModel::new(
            folder.info(),
            Box::new(QuantizedLlama { weights, context }),
            tokenizer,
            folder.config.prompt.unwrap_or(PromptStyle::Chat),
        ))
    }
}
