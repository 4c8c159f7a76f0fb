//! Evaluating a horoscope model as the seed project did, and more: the
//! perplexity of held-out horoscopes, and for several sampling settings the
//! share of outputs within 300-500 characters, distinct-2 (unique word
//! pairs over all word pairs: low means the outputs repeat each other),
//! diversity (1 - the mean pairwise cosine similarity of the outputs'
//! sentence embeddings: low means they say the same thing) and the mean
//! generation time.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;
use starcast_model::text::{SentenceEmbedder, cosine};
use starcast_model::{HoroscopeRequest, HoroscopeWriter, Language, ModelError, ZodiacSign};

use crate::reading::ReadingReport;

/// A horoscope held out of training: the prompt's sign and date, the text.
#[derive(Clone, Debug)]
pub struct HoroscopeText {
    pub sign: ZodiacSign,
    pub date: NaiveDate,
    pub text: String,
}

/// The figures of one (temperature, top-p) pair.
#[derive(Clone, Debug, Serialize)]
pub struct SettingReport {
    pub temperature: f32,
    pub top_p: f32,
    pub samples: usize,
    /// Samples the model could not turn into a horoscope.
    pub failures: usize,
    /// The share of samples with 300 to 500 characters.
    pub within_length: f64,
    pub mean_characters: f64,
    pub distinct_2: f64,
    /// None without a sentence-embedding model or with fewer than two outputs.
    pub diversity: Option<f64>,
    pub mean_seconds: f64,
    /// The first few outputs, for people to read.
    pub examples: Vec<String>,
}

/// A horoscope model's evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct TextReport {
    pub model: String,
    /// exp(mean negative log-likelihood per token) of the held-out texts.
    pub perplexity: f64,
    pub held_out_texts: usize,
    pub held_out_tokens: usize,
    pub settings: Vec<SettingReport>,
    /// The reading check of the day's horoscopes, when it was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<ReadingReport>,
}

/// How many outputs a report shows per setting.
const EXAMPLES: usize = 3;

/// Unique word pairs over all word pairs, across `texts`.
pub fn distinct_2(texts: &[String]) -> f64 {
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for text in texts {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        for pair in words.windows(2) {
            total += 1;
            seen.insert((pair[0].clone(), pair[1].clone()));
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

/// 1 - the mean cosine similarity over every pair of texts.
fn diversity(embedder: &SentenceEmbedder, texts: &[String]) -> candle_core::Result<Option<f64>> {
    if texts.len() < 2 {
        return Ok(None);
    }
    let vectors = embedder.embed(texts)?;
    let mut total = 0.0;
    let mut pairs = 0usize;
    for (i, a) in vectors.iter().enumerate() {
        for b in &vectors[i + 1..] {
            total += f64::from(cosine(a, b));
            pairs += 1;
        }
    }
    Ok(Some(1.0 - total / pairs as f64))
}

/// Held-out perplexity as the served model sees it: exp(mean negative
/// log-likelihood per token) through the text core's own scoring, with the
/// model's own prompt format; NaN when the texts have no tokens. Also the
/// number of tokens scored.
pub fn perplexity(
    writer: &dyn HoroscopeWriter,
    held_out: &[HoroscopeText],
) -> Result<(f64, usize), ModelError> {
    let (mut tokens, mut nll) = (0usize, 0.0);
    for text in held_out {
        let score = writer.score(text.sign, text.date, &text.text)?;
        tokens += score.tokens;
        nll += score.negative_log_likelihood;
    }
    let perplexity = if tokens == 0 {
        f64::NAN
    } else {
        (nll / tokens as f64).exp()
    };
    Ok((perplexity, tokens))
}

/// Scores the held-out texts and samples `samples` horoscopes (signs in
/// turn, seeds 0, 1, ...) for each `(temperature, top_p)` pair.
pub fn evaluate_writer(
    writer: &dyn HoroscopeWriter,
    embedder: Option<&SentenceEmbedder>,
    held_out: &[HoroscopeText],
    settings: &[(f32, f32)],
    samples: usize,
    date: NaiveDate,
) -> Result<TextReport, ModelError> {
    let (perplexity, tokens) = perplexity(writer, held_out)?;
    let mut reports = Vec::new();
    for &(temperature, top_p) in settings {
        let mut texts = Vec::new();
        let mut failures = 0;
        let mut seconds = 0.0;
        for i in 0..samples {
            let request = HoroscopeRequest {
                sign: ZodiacSign::ALL[i % ZodiacSign::ALL.len()],
                date,
                temperature,
                top_p,
                seed: Some(i as u64),
                language: Language::En,
            };
            let start = Instant::now();
            match writer.write(&request, &mut |_| ControlFlow::Continue(())) {
                Ok(horoscope) => texts.push(horoscope.text),
                Err(_) => failures += 1,
            }
            seconds += start.elapsed().as_secs_f64();
        }
        let lengths: Vec<usize> = texts.iter().map(|t| t.chars().count()).collect();
        let within = lengths.iter().filter(|n| (300..=500).contains(*n)).count();
        reports.push(SettingReport {
            temperature,
            top_p,
            samples,
            failures,
            within_length: within as f64 / samples.max(1) as f64,
            mean_characters: lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64,
            distinct_2: distinct_2(&texts),
            diversity: match embedder {
                Some(embedder) => diversity(embedder, &texts)
                    .map_err(|e| ModelError::tensors("sentence embedder", e))?,
                None => None,
            },
            mean_seconds: seconds / samples.max(1) as f64,
            examples: texts.into_iter().take(EXAMPLES).collect(),
        });
    }
    Ok(TextReport {
        model: writer.info().name.clone(),
        perplexity,
        held_out_texts: held_out.len(),
        held_out_tokens: tokens,
        settings: reports,
        reading: None,
    })
}

impl TextReport {
    /// A self-contained HTML page of the report.
    pub fn html(&self, title: &str) -> String {
        let escape = |text: &str| {
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let rows: String = self
            .settings
            .iter()
            .map(|s| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{:.0}%</td><td>{:.0}</td><td>{:.3}</td><td>{}</td><td>{:.2} s</td><td>{}</td></tr>\n",
                    s.temperature,
                    s.top_p,
                    s.within_length * 100.0,
                    s.mean_characters,
                    s.distinct_2,
                    s.diversity.map_or("-".to_string(), |d| format!("{d:.3}")),
                    s.mean_seconds,
                    s.failures
                )
            })
            .collect();
        let examples: String = self
            .settings
            .iter()
            .flat_map(|s| {
                s.examples.iter().map(move |text| {
                    format!(
                        "<li><small>T={} top-p={}</small> {}</li>\n",
                        s.temperature,
                        s.top_p,
                        escape(text)
                    )
                })
            })
            .collect();
        format!(
            r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style>
</head><body>
<h1>{title}</h1>
<p>perplexity {perplexity:.2} on {texts} held-out horoscopes ({tokens} tokens)</p>
{reading}<table><tr><th>temperature</th><th>top-p</th><th>300-500 characters</th><th>mean characters</th><th>distinct-2</th><th>diversity</th><th>mean time</th><th>failures</th></tr>
{rows}</table>
<h2>Examples</h2>
<ul>
{examples}</ul>
</body></html>
"#,
            title = escape(title),
            reading = self.reading.as_ref().map_or(String::new(), |r| format!(
                "<p>reading check: {} of {} day's horoscopes read as horoscopes ({})</p>\n",
                r.passed, r.samples, r.language
            )),
            perplexity = self.perplexity,
            texts = self.held_out_texts,
            tokens = self.held_out_tokens,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_2_counts_repeated_word_pairs_once() {
        let texts = ["The stars smile. The stars smile.".to_string()];
        // pairs: the-stars, stars-smile., smile.-the, the-stars, stars-smile.
        assert!((distinct_2(&texts) - 3.0 / 5.0).abs() < 1e-12);
        assert_eq!(distinct_2(&["one".to_string()]), 0.0);
        let varied = ["a b c".to_string(), "d e f".to_string()];
        assert_eq!(distinct_2(&varied), 1.0);
    }
}
