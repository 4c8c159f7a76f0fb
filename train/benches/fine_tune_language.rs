//! LoRA fine-tuning throughput of the horoscope language model: tokens per
//! second over one epoch of `fine_tune_language` on the packaged SmolLM2
//! (F32, rank-8 adapters on q_proj and v_proj, batch 4), and the process's
//! peak memory. bench/train_text.sh runs PyTorch + PEFT beside it on the
//! same file, weights, adapters, batch and threads.
//!
//! Usage: cargo bench -p starcast-train --bench fine_tune_language -- HOROSCOPES.csv [HELD_OUT]
//! Prints one JSON object.

use std::path::Path;

use chrono::NaiveDate;
use starcast_model::folder::ModelFolder;
use starcast_model::text::load_llama;
use starcast_train::{HoroscopeText, LanguageOptions, fine_tune_language};

#[path = "../../bench/allocator.rs"]
mod allocator;
#[path = "../../bench/peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss_mb;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let data = args.first().expect("give the horoscopes CSV");
    let held_out: usize = args.get(1).map_or(8, |n| n.parse().unwrap());
    let mut reader = csv::Reader::from_path(data).unwrap();
    let texts: Vec<HoroscopeText> = reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            HoroscopeText {
                date: NaiveDate::parse_from_str(&row[0], "%Y-%m-%d").unwrap(),
                sign: row[1].parse().unwrap(),
                text: row[2].to_string(),
            }
        })
        .collect();
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct");
    let (base, tokenizer) = load_llama(&ModelFolder::open(&folder).unwrap()).unwrap();
    let options = LanguageOptions {
        epochs: 1,
        held_out,
        ..LanguageOptions::default()
    };
    let trained = fine_tune_language(&base, &tokenizer, &texts, &options, None, |_| {}).unwrap();
    let epoch = &trained.report.history[0];
    println!(
        "{}",
        serde_json::json!({
            "tokens_per_s": epoch.tokens_per_s,
            "train_loss": epoch.train_loss,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
}
