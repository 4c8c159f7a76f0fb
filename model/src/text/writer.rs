//! A horoscope writer over any decoder-only language model: prompting,
//! sampling with retries, streaming, and scoring, the same for the
//! quantized and the full-precision models.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use web_time::Instant;

use chrono::NaiveDate;
use tokenizers::Tokenizer;

use super::clean::{MAX_CHARS, MIN_CHARS, shape_horoscope};
use super::prompt::{PromptStyle, horoscope_prompt, next_entry};
use super::sampler::{Sampler, SamplingSettings, ban_continuations};
use super::seed::daily_seed;
use crate::{
    Horoscope, HoroscopeRequest, HoroscopeWriter, Language, ModelError, ModelInfo, Streamed,
    TextScore, ZodiacSign,
};

/// How many samples (each with the next seed) may be tried for one usable
/// horoscope before giving up.
const ATTEMPTS: u64 = 4;
/// The most tokens in a row a horoscope may take from its prompt's examples,
/// plus one.
const COPIED_TOKENS: usize = 8;
/// Raw text long enough to cut a 500-character horoscope from, with room
/// for what cleaning removes.
const ENOUGH_CHARS: usize = MAX_CHARS + 150;
/// End-of-text tokens of the chat and base vocabularies in use.
const STOP_TOKENS: [&str; 7] = [
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<eos>",
    "<end_of_turn>",
];

/// A language model that gives next-token logits.
pub trait Decoder: Send + Sync {
    /// A new sequence, with its own attention cache over shared weights,
    /// so that requests run side by side on one loaded model.
    fn start(&self) -> Box<dyn DecodeSession + '_>;

    /// How many positions (prompt and answer) the model can attend over.
    fn context(&self) -> usize;
}

/// One sequence being decoded.
pub trait DecodeSession {
    /// Feeds `tokens` after those fed so far and returns the logits for
    /// the token after the last of them.
    fn feed(&mut self, tokens: &[u32]) -> candle_core::Result<Vec<f32>>;
}

/// The token ids that end a text in this vocabulary.
pub fn stop_tokens(tokenizer: &Tokenizer) -> Vec<u32> {
    STOP_TOKENS
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .collect()
}

/// The token ids that write a line break (the byte-fallback one too).
fn line_break_tokens(tokenizer: &Tokenizer) -> Vec<u32> {
    tokenizer
        .get_vocab(true)
        .into_iter()
        .filter(|(token, _)| token.contains('\n') || token == "<0x0A>")
        .map(|(_, id)| id)
        .collect()
}

pub struct LanguageModel {
    info: ModelInfo,
    location: Option<PathBuf>,
    decoder: Box<dyn Decoder>,
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

impl LanguageModel {
    pub fn new(
        info: ModelInfo,
        decoder: Box<dyn Decoder>,
        tokenizer: Tokenizer,
        prompt: PromptStyle,
    ) -> Self {
        let mut stops = stop_tokens(&tokenizer);
        if prompt.ends_at_line_break() {
            stops.extend(line_break_tokens(&tokenizer));
        }
        LanguageModel {
            info,
            location: None,
            decoder,
            stop_tokens: stops,
            tokenizer,
            prompt,
            sampling: SamplingSettings::default(),
        }
    }

    /// The model, loaded from the folder at `location` on disk.
    pub fn at(self, location: PathBuf) -> Self {
        LanguageModel {
            location: Some(location),
            ..self
        }
    }

    /// The language the model writes, for prompts without a request.
    fn language(&self) -> Language {
        self.info.language.unwrap_or_default()
    }

    fn failed(&self, reason: impl ToString) -> ModelError {
        ModelError::new(self.info.name.clone(), reason.to_string())
    }

    fn tensor_failed(&self, error: candle_core::Error) -> ModelError {
        ModelError::tensors(self.info.name.clone(), error)
    }

    fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>, ModelError> {
        self.tokenizer
            .encode(prompt, self.prompt.starts_a_document())
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.failed(e))
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.failed(e))
    }

    /// Generates one answer, which begins with `answer_start`.
    fn sample(
        &self,
        prompt: &[u32],
        answer_start: &str,
        sampler: &mut Sampler,
        on_token: &mut dyn FnMut(Streamed) -> ControlFlow<()>,
    ) -> Result<Sample, ModelError> {
        if on_token(Streamed::Text(answer_start)).is_break() {
            return Ok(Sample {
                text: answer_start.to_string(),
                tokens: 0,
                abandoned: true,
            });
        }
        let fail = |e: candle_core::Error| self.tensor_failed(e);
        let room = self.decoder.context().saturating_sub(prompt.len());
        if room == 0 {
            return Err(self.failed(format!(
                "the prompt takes {} tokens, all of the model's context of {}",
                prompt.len(),
                self.decoder.context()
            )));
        }
        let mut session = self.decoder.start();
        let mut scores = session.feed(prompt).map_err(fail)?;
        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        // Each token sampled is fed back: `room` of them fill the context.
        while generated.len() < sampler.settings().max_new_tokens.min(room) {
            // Small models like to stop after one sentence: no stopping
            // before the horoscope is long enough.
            if answer_start.len() + text.chars().count() < MIN_CHARS {
                for &stop in &self.stop_tokens {
                    if let Some(score) = scores.get_mut(stop as usize) {
                        *score = f32::NEG_INFINITY;
                    }
                }
            }
            // A few-shot page's examples are there to be followed, not copied.
            if self.prompt.ends_at_line_break() && generated.len() >= COPIED_TOKENS {
                let recent = &generated[generated.len() - (COPIED_TOKENS - 1)..];
                ban_continuations(&mut scores, prompt, recent);
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
                if on_token(Streamed::Text(piece)).is_break() {
                    return Ok(Sample {
                        text: format!("{answer_start}{decoded}"),
                        tokens: generated.len(),
                        abandoned: true,
                    });
                }
                text = decoded;
            }
            if self.prompt.ends_at_line_break()
                && let Some(end) = next_entry(&text)
            {
                text.truncate(end);
                break;
            }
            if text.chars().count() >= ENOUGH_CHARS {
                break;
            }
            scores = session.feed(&[token]).map_err(fail)?;
        }
        Ok(Sample {
            text: format!("{answer_start}{text}"),
            tokens: generated.len(),
            abandoned: false,
        })
    }
}

/// The negative log-probability of `token` under `logits`.
fn surprise(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let logit = logits
        .get(token as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    total.ln() - f64::from(logit - max)
}

impl HoroscopeWriter for LanguageModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn location(&self) -> Option<&Path> {
        self.location.as_deref()
    }

    /// Feeds the prompt, then the text one token at a time, adding up each
    /// token's negative log-probability.
    fn score(
        &self,
        sign: ZodiacSign,
        date: NaiveDate,
        text: &str,
    ) -> Result<TextScore, ModelError> {
        let prompt = horoscope_prompt(self.prompt, sign, date, self.language());
        // The answer the prompt begins is the text's own beginning when it
        // has that beginning (as training reads it), else none of it.
        let (context, answer) = match text.strip_prefix(&prompt.answer_start) {
            Some(rest) if !prompt.answer_start.is_empty() => (prompt.input.as_str(), rest),
            _ => (
                prompt
                    .input
                    .strip_suffix(&prompt.answer_start)
                    .unwrap_or(&prompt.input),
                text,
            ),
        };
        let context = self.encode_prompt(context)?;
        let answer = self.encode(answer)?;
        let fail = |e: candle_core::Error| self.tensor_failed(e);
        let mut session = self.decoder.start();
        let mut logits = session.feed(&context).map_err(fail)?;
        let mut negative_log_likelihood = 0.0;
        for (index, &token) in answer.iter().enumerate() {
            negative_log_likelihood += surprise(&logits, token);
            if index + 1 < answer.len() {
                logits = session.feed(&[token]).map_err(fail)?;
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
        on_token: &mut dyn FnMut(Streamed) -> ControlFlow<()>,
    ) -> Result<Horoscope, ModelError> {
        let start = Instant::now();
        let prompt = horoscope_prompt(self.prompt, request.sign, request.date, request.language);
        let input = self.encode_prompt(&prompt.input)?;
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
            // The reader leaving at a restart ends the work like leaving mid-sample.
            let sample = if attempt > 0 && on_token(Streamed::Restart).is_break() {
                Sample {
                    text: String::new(),
                    tokens: 0,
                    abandoned: true,
                }
            } else {
                let mut sampler = Sampler::new(settings.clone(), seed.wrapping_add(attempt));
                self.sample(&input, &prompt.answer_start, &mut sampler, on_token)?
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surprise_is_the_negative_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let total: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        let expected = -(3f64.exp() / total).ln();
        assert!((surprise(&logits, 2) - expected).abs() < 1e-9);
        assert!(surprise(&logits, 0) > surprise(&logits, 2));
    }
}
