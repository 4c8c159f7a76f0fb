//! Llama-architecture models in GGUF (SmolLM2-135M-Instruct is the offline
//! default), through candle's quantized Llama, with the tokenizer the GGUF
//! file carries.

use std::fs::File;
use std::io::{Read, Seek};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use chrono::NaiveDate;
use tokenizers::Tokenizer;

use super::clean::{MAX_CHARS, MIN_CHARS, shape_horoscope};
use super::prompt::{PromptStyle, horoscope_prompt};
use super::sampler::{Sampler, SamplingSettings};
use super::seed::daily_seed;
use crate::folder::{LoadError, ModelFolder};
use crate::{
    Horoscope, HoroscopeRequest, HoroscopeWriter, ModelError, ModelInfo, TextScore, ZodiacSign,
};

/// How many samples (each with the next seed) may be tried for one usable
/// horoscope before giving up.
const ATTEMPTS: u64 = 4;
/// Raw text long enough to cut a 500-character horoscope from, with room
/// for what cleaning removes.
const ENOUGH_CHARS: usize = MAX_CHARS + 150;
const STOP_TOKENS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

pub struct QuantizedLlama {
    info: ModelInfo,
    weights: ModelWeights,
    tokenizer: Tokenizer,
    stop_tokens: Vec<u32>,
    prompt: PromptStyle,
    sampling: SamplingSettings,
}

/// One pass of generation.
struct Sample {
    text: String,
    tokens: usize,
    /// The reader went away before the end.
    abandoned: bool,
}

fn weights_error(path: &Path) -> impl Fn(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
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

impl QuantizedLlama {
    /// Loads the folder's `.gguf` file.
    pub fn load(folder: &ModelFolder) -> Result<Self, LoadError> {
        let path = folder.weights("gguf")?;
        let error = weights_error(&path);
        let mut file = File::open(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(&error)?;
        let tokenizer = Tokenizer::from_gguf(&content).map_err(&error)?;
        let weights = load_weights(content, &mut file).map_err(&error)?;
        let stop_tokens = STOP_TOKENS
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        Ok(QuantizedLlama {
            info: folder.info(),
            weights,
            tokenizer,
            stop_tokens,
            prompt: folder.config.prompt.unwrap_or(PromptStyle::Chat),
            sampling: SamplingSettings::default(),
        })
    }

    fn failed(&self, reason: impl ToString) -> ModelError {
        ModelError {
            model: self.info.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Generates one answer, which begins with `answer_start`.
    fn sample(
        &self,
        prompt: &[u32],
        answer_start: &str,
        sampler: &mut Sampler,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Sample, ModelError> {
        if on_token(answer_start).is_break() {
            return Ok(Sample {
                text: answer_start.to_string(),
                tokens: 0,
                abandoned: true,
            });
        }
        // A clone shares the weights and owns its own attention cache, so
        // requests run side by side on one loaded model.
        let mut model = self.weights.clone();
        let fail = |e: candle_core::Error| self.failed(e);
        let input = Tensor::new(prompt, &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .map_err(fail)?;
        let mut logits = model.forward(&input, 0).map_err(fail)?;
        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        while generated.len() < sampler.settings().max_new_tokens {
            let mut scores = logits
                .squeeze(0)
                .and_then(|l| l.to_vec1::<f32>())
                .map_err(fail)?;
            // Small models like to stop after one sentence: no stopping
            // before the horoscope is long enough.
            if answer_start.len() + text.chars().count() < MIN_CHARS {
                for &stop in &self.stop_tokens {
                    if let Some(score) = scores.get_mut(stop as usize) {
                        *score = f32::NEG_INFINITY;
                    }
                }
            }
            let token = sampler.next_token(&mut scores, &generated);
            if self.stop_tokens.contains(&token) {
                break;
            }
            generated.push(token);
            let decoded = self
                .tokenizer
                .decode(&generated, true)
                .map_err(|e| self.failed(e))?;
            // A token can end inside a multi-byte character: wait for the rest.
            if !decoded.ends_with('\u{fffd}')
                && decoded.len() > text.len()
                && decoded.starts_with(&text)
            {
                let piece = &decoded[text.len()..];
                if on_token(piece).is_break() {
                    return Ok(Sample {
                        text: format!("{answer_start}{decoded}"),
                        tokens: generated.len(),
                        abandoned: true,
                    });
                }
                text = decoded;
            }
            if text.chars().count() >= ENOUGH_CHARS {
                break;
            }
            let next = Tensor::new(&[token], &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(fail)?;
            logits = model
                .forward(&next, prompt.len() + generated.len() - 1)
                .map_err(fail)?;
        }
        Ok(Sample {
            text: format!("{answer_start}{text}"),
            tokens: generated.len(),
            abandoned: false,
        })
    }
}

impl HoroscopeWriter for QuantizedLlama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Feeds the prompt, then the text one token at a time (the model
    /// gives logits for the last position only), adding up each token's
    /// negative log-probability.
    fn score(
        &self,
        sign: ZodiacSign,
        date: NaiveDate,
        text: &str,
    ) -> Result<TextScore, ModelError> {
        let prompt = horoscope_prompt(self.prompt, sign, date);
        let encode = |text: &str| {
            self.tokenizer
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| self.failed(e))
        };
        let context = encode(&prompt.input)?;
        let answer = encode(text)?;
        let fail = |e: candle_core::Error| self.failed(e);
        let mut model = self.weights.clone();
        let input = |ids: &[u32]| {
            Tensor::new(ids, &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(fail)
        };
        let mut logits = model.forward(&input(&context)?, 0).map_err(fail)?;
        let mut negative_log_likelihood = 0.0;
        for (offset, &token) in answer.iter().enumerate() {
            let log_probabilities =
                candle_nn::ops::log_softmax(&logits.squeeze(0).map_err(fail)?, 0)
                    .and_then(|l| l.to_vec1::<f32>())
                    .map_err(fail)?;
            negative_log_likelihood -= f64::from(log_probabilities[token as usize]);
            if offset + 1 < answer.len() {
                logits = model
                    .forward(&input(&[token])?, context.len() + offset)
                    .map_err(fail)?;
            }
        }
        Ok(TextScore {
            tokens: answer.len(),
            negative_log_likelihood,
        })
    }

    fn write(
        &self,
        request: &HoroscopeRequest,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Horoscope, ModelError> {
        let start = Instant::now();
        let prompt = horoscope_prompt(self.prompt, request.sign, request.date);
        let encoding = self
            .tokenizer
            .encode(prompt.input.as_str(), false)
            .map_err(|e| self.failed(e))?;
        let seed = request
            .seed
            .unwrap_or_else(|| daily_seed(request.sign, request.date, &self.info.version));
        let settings = SamplingSettings {
            temperature: request.temperature,
            top_p: request.top_p,
            ..self.sampling.clone()
        };
        let mut tokens = 0;
        for attempt in 0..ATTEMPTS {
            let mut sampler = Sampler::new(settings.clone(), seed.wrapping_add(attempt));
            let sample = self.sample(
                encoding.get_ids(),
                &prompt.answer_start,
                &mut sampler,
                on_token,
            )?;
            tokens += sample.tokens;
            let shaped = if sample.abandoned {
                Some(sample.text)
            } else {
                let shaped = shape_horoscope(&sample.text);
                if shaped.is_none() {
                    tracing::debug!(attempt, text = %sample.text, "not a usable horoscope; sampling again");
                }
                shaped
            };
            if let Some(text) = shaped {
                return Ok(Horoscope {
                    sign: request.sign,
                    date: request.date,
                    text,
                    model: format!("{} {}", self.info.name, self.info.version),
                    tokens,
                    tokens_per_s: tokens as f64 / start.elapsed().as_secs_f64().max(1e-9),
                });
            }
        }
        Err(self.failed(format!(
            "{ATTEMPTS} samples gave no horoscope of 300 to 500 characters ending a sentence; try another seed or a lower temperature"
        )))
    }
}
