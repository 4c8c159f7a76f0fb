//! GPT-2 and T5 against transformers: tiny checkpoints with random weights,
//! saved by transformers with the logits it computes on them
//! (fixtures/tiny_text_models.py writes both), load through the model
//! folder code and give the same logits.

use std::path::PathBuf;

use candle_core::Device;
use chrono::NaiveDate;
use starcast_model::folder::ModelFolder;
use starcast_model::text::{Decoder, Gpt2, T5, load_horoscope_writer};
use starcast_model::{HoroscopeRequest, Language, Streamed, ZodiacSign};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("expected.json")).unwrap())
        .unwrap()
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn assert_close(ours: &[f32], theirs: &[f32]) {
    assert_eq!(ours.len(), theirs.len());
    let gap = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let scale = theirs.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(
        gap <= 1e-4 * scale.max(1.0),
        "logits differ by {gap} (scale {scale})"
    );
}

#[test]
fn gpt2_conv1d_weights_give_transformers_logits() {
    let folder = fixture("tiny-gpt2");
    let config =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    let model =
        Gpt2::from_safetensors(config, &[folder.join("model.safetensors")], &Device::Cpu).unwrap();
    let golden = expected("tiny-gpt2");
    let tokens = ids(&golden["ids"]);
    let whole = model.start().feed(&tokens).unwrap();
    assert_close(&whole, &floats(&golden["last_logits"]));
    // The same through the cache, a few tokens at a time.
    let mut session = model.start();
    session.feed(&tokens[..5]).unwrap();
    session.feed(&tokens[5..9]).unwrap();
    assert_close(&session.feed(&tokens[9..]).unwrap(), &whole);
}

#[test]
fn t5_encoder_decoder_gives_transformers_logits() {
    let folder = fixture("tiny-t5");
    let config =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    let model = T5::load(config, &[folder.join("model.safetensors")], &Device::Cpu).unwrap();
    let golden = expected("tiny-t5");
    let mut session = model.start();
    let first = session.feed(&ids(&golden["ids"])).unwrap();
    assert_close(&first, &floats(&golden["first_logits"]));
    let decoder_ids = ids(&golden["decoder_ids"]);
    let mut last = first;
    for &token in &decoder_ids[1..] {
        last = session.feed(&[token]).unwrap();
    }
    assert_close(&last, &floats(&golden["last_logits"]));
}

#[test]
fn transformers_folders_load_as_horoscope_models_and_fail_in_sentences() {
    let request = HoroscopeRequest {
        sign: ZodiacSign::Leo,
        date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        temperature: 0.6,
        top_p: 0.7,
        seed: Some(1),
        language: Language::En,
    };
    for (name, architecture) in [("tiny-gpt2", "gpt2"), ("tiny-t5", "t5")] {
        let folder = fixture(name);
        let info = ModelFolder::open(&folder).unwrap().info();
        assert_eq!(info.architecture, architecture, "from model_type");
        let writer = load_horoscope_writer(&folder, &Device::Cpu).unwrap();
        let score = writer
            .score(request.sign, request.date, "Today is a good day.")
            .unwrap();
        assert!(score.tokens > 0 && score.negative_log_likelihood.is_finite());
        // Random weights write no horoscope: each unusable sample is
        // followed by a restart, and the end is an error, not a crash.
        let mut restarts = 0;
        let err = writer
            .write(&request, &mut |event| {
                restarts += usize::from(event == Streamed::Restart);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(err.reason.contains("samples gave no horoscope"), "{err:?}");
        assert_eq!(restarts, 3, "four samples, three restarts");
    }
}
