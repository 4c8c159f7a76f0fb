//! `starcast train horoscope` from the command line, on the packaged
//! SmolLM2 and a processed horoscope file: LoRA adapters are registered and
//! served when their held-out perplexity beats the base model's, listed by
//! `models`, and `generate` writes with them.

mod common;

use std::path::{Path, PathBuf};

use common::{crash_after_first_epoch, epoch_losses, starcast, stdout};

fn smollm2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct")
}

/// A processed file in one house style the base model has never seen.
fn processed_csv(path: &Path, rows: usize) {
    let signs = ["aries", "taurus", "gemini", "cancer", "leo", "virgo"];
    let colours = ["amber", "teal", "violet", "silver"];
    let mut csv = "date,sign,text,source\n".to_string();
    for i in 0..rows {
        csv += &format!(
            "2026-11-{:02},{},\"The lucky colour of the day is {} and the lucky number is {}. Starcast says: keep calm, drink water, answer every letter.\",house\n",
            1 + i % 28,
            signs[i % signs.len()],
            colours[i % colours.len()],
            3 + i % 5
        );
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn lora_training_registers_and_serves_a_better_horoscope_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("horoscopes.csv");
    processed_csv(&data, 16);
    let registry = dir.path().join("registry");
    let base = smollm2();
    let output = starcast(&[
        "train",
        "horoscope",
        "--data",
        data.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
        "--lora",
        "4",
        "--lr",
        "0.003",
        "--epochs",
        "1",
        "--max-tokens",
        "64",
        "--held-out",
        "4",
    ]);
    let printed = stdout(&output);
    assert!(
        printed.contains("registered horoscope version v1"),
        "{printed}"
    );
    assert!(
        printed.contains("serving v1: perplexity"),
        "a house style the base never saw is learnt: {printed}"
    );
    let version = registry.join("horoscope").join("versions").join("v1");
    assert!(version.join("adapter_model.safetensors").is_file());
    let lineage: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(version.join("lineage.json")).unwrap())
            .unwrap();
    assert_eq!(lineage["dataset_hash"].as_str().unwrap().len(), 64);
    assert!(
        lineage["base_model"]
            .as_str()
            .unwrap()
            .ends_with("smollm2-135m-instruct")
    );

    let listed = stdout(&starcast(&[
        "models",
        "--registry",
        registry.to_str().unwrap(),
        "--task",
        "horoscope",
        "list",
    ]));
    assert!(listed.contains("v1"), "{listed}");

    let generated = stdout(&starcast(&[
        "generate",
        "horoscope",
        "--sign",
        "leo",
        "--date",
        "2026-11-23",
        "--model",
        version.to_str().unwrap(),
        "--json",
    ]));
    let horoscope: serde_json::Value = serde_json::from_str(&generated).unwrap();
    let length = horoscope["text"].as_str().unwrap().chars().count();
    assert!((300..=500).contains(&length), "{horoscope}");
}

#[test]
fn bad_horoscope_training_input_gets_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("horoscopes.csv");
    processed_csv(&data, 3);
    let base = smollm2();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "horoscope",
            "--base",
            base.to_str().unwrap(),
            "--out",
            dir.path().join("out").to_str().unwrap().to_string().leak(),
        ];
        args.extend_from_slice(extra);
        let output = starcast(&args);
        assert!(!output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let too_few = run(&["--data", data.to_str().unwrap()]);
    assert!(too_few.contains("hold out fewer"), "{too_few}");
    let missing = run(&["--data", "no/such/horoscopes.parquet"]);
    assert!(
        missing.contains("could not read the horoscopes in no/such/horoscopes.parquet"),
        "{missing}"
    );
    let target = run(&["--data", data.to_str().unwrap(), "--lora-targets", "qkv"]);
    assert!(
        target.contains("'qkv' is not a Llama projection"),
        "{target}"
    );
    let gpu = run(&["--data", data.to_str().unwrap(), "--device", "cuda"]);
    assert!(
        gpu.contains("built without CUDA: build it with scripts/build-cuda.sh"),
        "{gpu}"
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
}

#[test]
fn a_crash_in_the_middle_of_horoscope_training_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("horoscopes.csv");
    processed_csv(&data, 12);
    let base = smollm2();
    let checkpoint = dir.path().join("checkpoint");
    let run_args = |out: &Path| -> Vec<String> {
        [
            "train",
            "horoscope",
            "--lora",
            "4",
            "--lr",
            "0.003",
            "--epochs",
            "2",
            "--max-tokens",
            "48",
            "--held-out",
            "4",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(
            ["--data", "--base", "--checkpoint", "--out"]
                .iter()
                .zip([&data, &base, &checkpoint, &out.to_path_buf()])
                .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()]),
        )
        .collect()
    };
    let out = dir.path().join("model");
    crash_after_first_epoch(&run_args(&out), &checkpoint);
    assert!(!out.exists(), "the run was killed before it finished");

    let args = run_args(&out);
    let rerun = starcast(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(stderr.contains("resuming after epoch 1"), "{stderr}");
    assert!(!checkpoint.exists(), "the checkpoint is removed at the end");

    let unbroken = dir.path().join("unbroken");
    let args = run_args(&unbroken);
    stdout(&starcast(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let (resumed, straight) = (
        epoch_losses(&out, "/report/history"),
        epoch_losses(&unbroken, "/report/history"),
    );
    assert_eq!(resumed.len(), 2, "each epoch once");
    for (a, b) in resumed.iter().zip(&straight) {
        assert!(
            (a - b).abs() < 1e-4,
            "resumed {resumed:?}, unbroken {straight:?}"
        );
    }
}
