//! Fine-tuning the real packaged SmolLM2 on horoscopes: LoRA adapters and
//! the whole network both lower held-out perplexity, and the folders they
//! write load in the text core and write better-fitting horoscopes.

use std::path::PathBuf;

use candle_core::Device;
use chrono::NaiveDate;
use starcast_model::ZodiacSign;
use starcast_model::folder::ModelFolder;
use starcast_model::text::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, LanguageModel, PromptStyle, load_horoscope_writer, load_llama,
};
use starcast_train::{HoroscopeText, LanguageOptions, LoraOptions, Progress, fine_tune_language};

fn smollm2_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct")
}

/// Horoscopes in one house style, which the base model has never seen.
fn corpus(count: usize) -> Vec<HoroscopeText> {
    let colours = ["amber", "teal", "violet", "silver", "crimson", "olive"];
    let numbers = ["three", "seven", "nine", "twelve"];
    (0..count)
        .map(|i| {
            let sign = ZodiacSign::ALL[i % 12];
            HoroscopeText {
                sign,
                date: NaiveDate::from_ymd_opt(2026, 11, 1 + (i % 28) as u32).unwrap(),
                text: format!(
                    "{}, the lucky colour of the day is {} and the lucky number is {}. \
                     Starcast says: keep calm, drink water, answer every letter.",
                    sign.name(),
                    colours[i % colours.len()],
                    numbers[i % numbers.len()]
                ),
            }
        })
        .collect()
}

fn options(lora: Option<LoraOptions>, epochs: usize) -> LanguageOptions {
    LanguageOptions {
        epochs,
        batch: 4,
        learning_rate: 1e-3,
        max_tokens: 64,
        held_out: 4,
        lora,
        ..LanguageOptions::default()
    }
}

fn per_token(writer: &dyn starcast_model::HoroscopeWriter, text: &HoroscopeText) -> f64 {
    let score = writer.score(text.sign, text.date, &text.text).unwrap();
    score.negative_log_likelihood / score.tokens as f64
}

#[test]
fn lora_adapters_learn_the_house_style_and_load_as_a_model() {
    let base_folder = ModelFolder::open(&smollm2_folder()).unwrap();
    let (base, tokenizer) = load_llama(&base_folder).unwrap();
    let texts = corpus(20);
    let lora = LoraOptions {
        rank: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v_proj".into()],
    };
    let mut steps = 0;
    let options = LanguageOptions {
        learning_rate: 3e-3,
        ..options(Some(lora), 2)
    };
    let trained = fine_tune_language(&base, &tokenizer, &texts, &options, None, |p| {
        if let Progress::Step { loss } = p {
            assert!(loss.is_finite());
            steps += 1;
        }
    })
    .unwrap();
    assert_eq!(steps, 2 * 4, "16 training texts in batches of 4, twice");
    let report = &trained.report;
    assert_eq!((report.train_texts, report.held_out_texts), (16, 4));
    assert!(
        report.perplexity < report.base_perplexity * 0.6,
        "held-out perplexity {} from {}",
        report.perplexity,
        report.base_perplexity
    );

    let dir = tempfile::tempdir().unwrap();
    let base_location = smollm2_folder().canonicalize().unwrap();
    trained
        .save(
            dir.path(),
            base_location.to_str().unwrap(),
            &tokenizer,
            "house style",
        )
        .unwrap();
    let adapter_bytes = std::fs::metadata(dir.path().join(ADAPTER_WEIGHTS))
        .unwrap()
        .len();
    assert!(
        adapter_bytes < 2_000_000,
        "{adapter_bytes} bytes of adapters"
    );
    assert!(dir.path().join(ADAPTER_CONFIG).is_file());
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(metrics["perplexity"].as_f64().unwrap(), report.perplexity);

    // Served: the adapters merged into the base, asked in the format it
    // was trained on; the untouched base asked the same way fits worse.
    let served = load_horoscope_writer(dir.path(), &Device::Cpu).unwrap();
    let untouched = LanguageModel::new(
        base_folder.info(),
        Box::new(base.clone()),
        tokenizer.clone(),
        PromptStyle::Horoscope,
    );
    let held_out = texts.last().unwrap();
    assert!(
        per_token(served.as_ref(), held_out) < per_token(&untouched, held_out) - 0.3,
        "served {} vs base {} nats a token",
        per_token(served.as_ref(), held_out),
        per_token(&untouched, held_out)
    );
}

#[test]
fn full_fine_tuning_writes_safetensors_that_load() {
    let (base, tokenizer) = load_llama(&ModelFolder::open(&smollm2_folder()).unwrap()).unwrap();
    let texts = corpus(12);
    let trained =
        fine_tune_language(&base, &tokenizer, &texts, &options(None, 1), None, |_| {}).unwrap();
    assert!(
        trained.report.perplexity < trained.report.base_perplexity,
        "{:?}",
        trained.report
    );
    let dir = tempfile::tempdir().unwrap();
    trained
        .save(dir.path(), "smollm2", &tokenizer, "full")
        .unwrap();
    assert!(dir.path().join("model.safetensors").is_file());
    assert!(dir.path().join("tokenizer.json").is_file());
    let writer = load_horoscope_writer(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(writer.info().name, "full");
    let held_out = texts.last().unwrap();
    assert!(per_token(writer.as_ref(), held_out).is_finite());
}

#[test]
fn too_few_horoscopes_or_tokens_are_refused_with_a_reason() {
    let (base, tokenizer) = load_llama(&ModelFolder::open(&smollm2_folder()).unwrap()).unwrap();
    let err = fine_tune_language(
        &base,
        &tokenizer,
        &corpus(4),
        &options(None, 1),
        None,
        |_| {},
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("hold out fewer"), "{err}");
    let cramped = LanguageOptions {
        max_tokens: 4,
        ..options(None, 1)
    };
    let err = fine_tune_language(&base, &tokenizer, &corpus(8), &cramped, None, |_| {})
        .err()
        .unwrap();
    assert!(err.to_string().contains("raise the token limit"), "{err}");
}
