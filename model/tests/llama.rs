//! The full-precision Llama on the real packaged SmolLM2: dequantized from
//! the GGUF, it agrees with the quantized model; written as BF16
//! safetensors in Hugging Face's layout, it loads back and writes
//! horoscopes; the served GGUF reads a token at a time as it reads a
//! prompt; broken folders get errors that say what is wrong.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use chrono::NaiveDate;
use starcast_model::folder::{LoadError, ModelConfig, ModelFolder};
use starcast_model::text::{
    Cache, Decoder, Kernels, LanguageModel, Llama, NextLogits, PromptStyle, load_horoscope_writer,
    load_llama, load_quantized_llama, save_llama,
};
use starcast_model::{
    HoroscopeRequest, HoroscopeWriter, Language, ModelKind, TextScore, ZodiacSign,
};
use tokenizers::Tokenizer;

fn smollm2_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct")
}

fn smollm2_f32() -> &'static (Llama, Tokenizer) {
    static MODEL: OnceLock<(Llama, Tokenizer)> = OnceLock::new();
    MODEL.get_or_init(|| load_llama(&ModelFolder::open(&smollm2_folder()).unwrap()).unwrap())
}

const PROMPT: &str = "<|im_start|>user\nWrite today's horoscope for Leo.<|im_end|>\n<|im_start|>assistant\nToday, Leo, the stars";

fn prompt_tokens() -> Vec<u32> {
    let (_, tokenizer) = smollm2_f32();
    tokenizer.encode(PROMPT, false).unwrap().get_ids().to_vec()
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap()
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn dequantized_weights_agree_with_the_quantized_model() {
    let folder = ModelFolder::open(&smollm2_folder()).unwrap();
    let quantized = load_quantized_llama(&folder).unwrap();
    let (sign, date) = (
        ZodiacSign::Leo,
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
    );
    let text =
        "Today, Leo, you will find that bold plans at work pay off. Take time for love tonight.";
    let from_quantized = quantized.score(sign, date, text).unwrap();
    let from_full = smollm2_f32_writer().score(sign, date, text).unwrap();
    // The quantized model multiplies the Q4_1 weights as stored, with the
    // activations rounded to 8 bits; the F32 model has the same 4-bit
    // values, so the two differ by that rounding only.
    assert_eq!(from_quantized.tokens, from_full.tokens);
    let per_token = |s: &TextScore| s.negative_log_likelihood / s.tokens as f64;
    assert!(
        (per_token(&from_quantized) - per_token(&from_full)).abs() < 0.1,
        "quantized {} vs full {} nats a token",
        per_token(&from_quantized),
        per_token(&from_full)
    );
    assert!(
        per_token(&from_full) < 5.0,
        "fluent text is likely: {}",
        per_token(&from_full)
    );
}

#[test]
fn the_served_gguf_reads_one_token_at_a_time_as_it_reads_a_prompt() {
    let path = smollm2_folder().join("model.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let quantized = Llama::from_gguf_quantized(&content, &mut file).unwrap();
    let tokens = prompt_tokens();
    let whole = quantized
        .next_logits(&tokens, &mut Cache::default())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut cache = Cache::default();
    let mut stepped = Vec::new();
    for token in &tokens {
        stepped = quantized
            .next_logits(&[*token], &mut cache)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
    }
    // A block of positions takes other kernels and sums in another order
    // than one position, and the activations' 8-bit rounding magnifies
    // those last-bit differences: close, not equal (correlation 0.9992
    // when written; the top two tokens, 0.06 apart, swapped).
    let mut ranked: Vec<usize> = (0..whole.len()).collect();
    ranked.sort_by(|&a, &b| whole[b].total_cmp(&whole[a]));
    assert!(ranked[..3].contains(&argmax(&stepped)));
    let r = correlation(&whole, &stepped);
    assert!(r > 0.995, "correlation {r}");
}

#[test]
fn a_model_moved_with_to_device_predicts_as_before() {
    // What a GPU gets (`load_horoscope_writer` off the CPU), moved here to
    // the CPU: every weight must land in its place.
    let (llama, _) = smollm2_f32();
    let moved = llama.to_device(&Device::Cpu).unwrap();
    let tokens = prompt_tokens();
    let logits = |model: &Llama| {
        model
            .next_logits(&tokens, &mut Cache::default())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(logits(llama), logits(&moved));
}

fn smollm2_f32_writer() -> &'static dyn HoroscopeWriter {
    static WRITER: OnceLock<LanguageModel> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (llama, tokenizer) = smollm2_f32();
        LanguageModel::new(
            ModelFolder::open(&smollm2_folder()).unwrap().info(),
            Box::new(llama.clone()),
            tokenizer.clone(),
            PromptStyle::Chat,
        )
    })
}

#[test]
fn the_cache_and_the_differentiable_kernels_give_the_same_logits() {
    let (llama, _) = smollm2_f32();
    let tokens = prompt_tokens();
    let whole = llama.next_logits(&tokens, &mut Cache::default()).unwrap();
    let mut cache = Cache::default();
    let split = 3;
    llama.next_logits(&tokens[..split], &mut cache).unwrap();
    assert_eq!(cache.len(), split);
    // One token at a time, as generation goes: the cache makes room, then
    // writes each token into it.
    let mut resumed = None;
    for token in &tokens[split..] {
        resumed = Some(llama.next_logits(&[*token], &mut cache).unwrap());
    }
    assert_eq!(cache.len(), tokens.len());
    let resumed = resumed.unwrap();
    let mut slow = llama.clone();
    slow.set_kernels(Kernels::Differentiable);
    let differentiable = slow.next_logits(&tokens, &mut Cache::default()).unwrap();
    for other in [resumed, differentiable] {
        let gap = (&whole - &other)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gap < 1e-3, "logits differ by {gap}");
    }
    // Every position's logits: the last row is the next token's.
    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = llama.hidden(&input, &mut Cache::default()).unwrap();
    let all = llama.logits(&hidden.squeeze(0).unwrap()).unwrap();
    assert_eq!(all.dims(), [tokens.len(), 49_152]);
}

/// SmolLM2 in F32 written as safetensors of `dtype`, with transformers'
/// config only, as a Hub checkpoint has it: no Starcast fields.
fn saved(dtype: DType) -> tempfile::TempDir {
    let (llama, tokenizer) = smollm2_f32();
    let dir = tempfile::tempdir().unwrap();
    let config = ModelConfig::new(ModelKind::TextGeneration, "llama");
    save_llama(dir.path(), llama, tokenizer, dtype, config).unwrap();
    dir
}

#[test]
fn bf16_safetensors_in_hugging_face_layout_load_and_write_horoscopes() {
    let (llama, _) = smollm2_f32();
    let dir = saved(DType::BF16);
    let size = std::fs::metadata(dir.path().join("model.safetensors"))
        .unwrap()
        .len();
    assert!(
        (260_000_000..280_000_000).contains(&size),
        "{size} bytes: 135M BF16 weights with tied embeddings"
    );
    let (loaded, _) = load_llama(&ModelFolder::open(dir.path()).unwrap()).unwrap();
    let tokens = prompt_tokens();
    let original = llama.start().feed(&tokens).unwrap();
    let reloaded = loaded.start().feed(&tokens).unwrap();
    assert_eq!(argmax(&original), argmax(&reloaded));
    assert!(correlation(&original, &reloaded) > 0.99);

    let writer = load_horoscope_writer(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(writer.info().architecture, "llama");
    let request = HoroscopeRequest {
        sign: ZodiacSign::Aries,
        date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        temperature: 0.6,
        top_p: 0.7,
        seed: None,
        language: Language::En,
    };
    let horoscope = writer
        .write(&request, &mut |_| std::ops::ControlFlow::Continue(()))
        .unwrap();
    let length = horoscope.text.chars().count();
    assert!(
        (300..=500).contains(&length),
        "{length}: {}",
        horoscope.text
    );
    assert!(horoscope.text.contains("Aries"), "{}", horoscope.text);
}

#[test]
fn broken_safetensors_folders_say_what_is_wrong() {
    let dir = saved(DType::F16);
    let config_path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();

    std::fs::write(
        &config_path,
        config.replace("\"intermediate_size\": 1536", "\"intermediate_size\": 2048"),
    )
    .unwrap();
    let err = load_horoscope_writer(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Weights { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("gate_proj.weight has shape [1536, 576]"),
        "{err}"
    );

    std::fs::write(&config_path, &config).unwrap();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = load_horoscope_writer(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}
