//! Text generation speed on a packaged GGUF (SmolLM2-135M-Instruct Q4_1 by
//! default, or Gemma 3 270M Q4_K_M): prompt processing and generation
//! tokens/s on the weights as served (quantized, as stored) and on the same
//! weights dequantized to F32, time to first token and the day's horoscope
//! end to end, and peak memory. bench/text.sh runs llama.cpp and
//! transformers beside it.
//!
//! Usage: cargo bench -p starcast-model --bench text_generation -- [MODEL_DIR] [RUNS]
//! Prints one JSON object.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use candle_core::quantized::gguf_file;
use chrono::NaiveDate;
use starcast_model::folder::ModelFolder;
use starcast_model::text::{Decoder, Gemma3, Llama, load_horoscope_writer, load_llama};
use starcast_model::{HoroscopeRequest, Language, ZodiacSign};

#[path = "../../bench/allocator.rs"]
mod allocator;
#[path = "../../bench/peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss_mb;

const PROMPT_TOKENS: usize = 64;
const GENERATED_TOKENS: usize = 64;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median prompt and generation tokens/s over `runs` greedy decodes.
fn speed(decoder: &dyn Decoder, prompt: &[u32], runs: usize) -> candle_core::Result<(f64, f64)> {
    let mut prompt_tps = Vec::new();
    let mut generation_tps = Vec::new();
    for _ in 0..runs {
        let mut session = decoder.start();
        let start = Instant::now();
        let mut logits = session.feed(prompt)?;
        prompt_tps.push(prompt.len() as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        for _ in 0..GENERATED_TOKENS {
            let next = (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .unwrap_or(0) as u32;
            logits = session.feed(&[next])?;
        }
        generation_tps.push(GENERATED_TOKENS as f64 / start.elapsed().as_secs_f64());
    }
    Ok((median(prompt_tps), median(generation_tps)))
}

/// The folder's model as served (`quantized`) or dequantized to F32.
fn decoder(folder: &ModelFolder, quantized: bool) -> candle_core::Result<Box<dyn Decoder>> {
    let gguf = folder.path.join("model.gguf");
    let mut file = File::open(&gguf)?;
    let content = gguf_file::Content::read(&mut file)?;
    Ok(match (folder.config.architecture.as_str(), quantized) {
        ("gemma3", true) => Box::new(Gemma3::from_gguf_quantized(&content, &mut file)?),
        ("gemma3", false) => Box::new(Gemma3::from_gguf(&content, &mut file)?),
        (_, true) => Box::new(Llama::from_gguf_quantized(&content, &mut file)?),
        (_, false) => Box::new(load_llama(folder).map_err(candle_core::Error::wrap)?.0),
    })
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let folder = args
        .first()
        .filter(|a| !a.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct")
        });
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let gguf = folder.join("model.gguf");
    let file_mb = std::fs::metadata(&gguf)?.len() as f64 / 1e6;

    let writer = load_horoscope_writer(&folder, &Device::Cpu).map_err(candle_core::Error::wrap)?;
    let model_folder = ModelFolder::open(&folder).map_err(candle_core::Error::wrap)?;
    let request = HoroscopeRequest {
        sign: ZodiacSign::Leo,
        date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        temperature: 0.6,
        top_p: 0.7,
        seed: None,
        language: writer.info().language.unwrap_or(Language::En),
    };
    let mut first_token = None;
    let start = Instant::now();
    let horoscope = writer
        .write(&request, &mut |_| {
            // The first piece is the answer's given start; the model's own
            // first token is the second.
            if first_token.is_none() {
                first_token = Some(Duration::ZERO);
            } else if first_token == Some(Duration::ZERO) {
                first_token = Some(start.elapsed());
            }
            ControlFlow::Continue(())
        })
        .map_err(candle_core::Error::wrap)?;
    let whole = start.elapsed();
    // What serving holds: the writer, its tokenizer and a horoscope's cache.
    let serving_peak_mb = peak_rss_mb();
    drop(writer);

    let load_start = Instant::now();
    let quantized = decoder(&model_folder, true)?;
    let load = load_start.elapsed();

    // Ids 1000-1600 are ordinary text pieces in both vocabularies.
    let prompt: Vec<u32> = (0..PROMPT_TOKENS as u32)
        .map(|i| 1000 + (i * 7) % 600)
        .collect();
    let (prompt_tps, generation_tps) = speed(quantized.as_ref(), &prompt, runs)?;
    drop(quantized);

    // The same weights dequantized to F32, through the Decoder interface.
    let dequantized = decoder(&model_folder, false)?;
    let (f32_prompt_tps, f32_generation_tps) = speed(dequantized.as_ref(), &prompt, runs)?;
    drop(dequantized);

    let report = serde_json::json!({
        "model": gguf.display().to_string(),
        "threads": candle_core::utils::get_num_threads(),
        "runs": runs,
        "load_s": load.as_secs_f64(),
        "prompt_tokens": PROMPT_TOKENS,
        "prompt_tokens_per_s": prompt_tps,
        "generated_tokens": GENERATED_TOKENS,
        "generation_tokens_per_s": generation_tps,
        "horoscope": {
            "time_to_first_token_s": first_token.unwrap_or_default().as_secs_f64(),
            "total_s": whole.as_secs_f64(),
            "tokens": horoscope.tokens,
            "characters": horoscope.text.chars().count(),
        },
        "peak_rss_mb": serving_peak_mb,
        "weights_file_mb": file_mb,
        "f32": {
            "prompt_tokens_per_s": f32_prompt_tps,
            "generation_tokens_per_s": f32_generation_tps,
        },
    });
    println!("{report}");
    Ok(())
}
