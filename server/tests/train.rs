//! The training loop from the command line, as a team runs it: train
//! registers a version and serves it only when it wins, `models` promotes
//! and rolls back, `evaluate` reports; bad datasets get a sentence.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::photo_dataset as dataset;
use common::{crash_after_first_epoch, epoch_losses, failure, starcast, stdout};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

#[test]
fn train_registers_promotes_only_a_winner_and_the_registry_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    dataset(&photos, &[("cat", "chelsea.png"), ("coffee", "coffee.png")]);
    let registry = dir.path().join("registry");
    let base = data().join("models/mobilenet-v2-imagenet");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "actors",
            "--data",
            photos.to_str().unwrap(),
            "--base",
            base.to_str().unwrap(),
            "--registry",
            registry.to_str().unwrap(),
            "--epochs",
            "3",
            "--batch",
            "4",
        ];
        args.extend_from_slice(extra);
        starcast(&args)
    };

    let first = stdout(&train(&[]));
    assert!(first.contains("registered actors version v1"), "{first}");
    assert!(
        first.contains("serving v1: first version served"),
        "{first}"
    );
    assert!(first.contains("accuracy 100.0%"), "{first}");

    let second = stdout(&train(&["--seed", "7", "--margin", "2"]));
    assert!(second.contains("registered actors version v2"), "{second}");
    assert!(
        second.contains("not served: accuracy"),
        "a win by 2 is impossible: {second}"
    );

    let registry_args = ["--registry", registry.to_str().unwrap()];
    let list = stdout(&starcast(
        &[&["models", "list"][..], &registry_args].concat(),
    ));
    assert!(list.contains("* v1") && list.contains("  v2"), "{list}");

    let promoted = stdout(&starcast(
        &[&["models", "promote", "v2"][..], &registry_args].concat(),
    ));
    assert!(promoted.contains("serving actors v2"), "{promoted}");
    let back = stdout(&starcast(
        &[&["models", "rollback"][..], &registry_args].concat(),
    ));
    assert!(back.contains("serving actors v1 again"), "{back}");

    let shown = stdout(&starcast(
        &[&["models", "show", "v2"][..], &registry_args].concat(),
    ));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(
        shown["lineage"]["dataset_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(shown["lineage"]["parameters"]["seed"], 7);
    assert_eq!(shown["labels"], serde_json::json!(["cat", "coffee"]));

    let version = registry.join("actors/versions/v1");
    for file in [
        "model.safetensors",
        "config.json",
        "metrics.json",
        "lineage.json",
        "curves.svg",
    ] {
        assert!(version.join(file).is_file(), "{file} missing from v1");
    }
    let html = dir.path().join("report.html");
    let report = stdout(&starcast(&[
        "evaluate",
        version.to_str().unwrap(),
        "--data",
        photos.to_str().unwrap(),
        "--json",
        "--html",
        html.to_str().unwrap(),
    ]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["examples"], 10);
    assert!(report["accuracy"].as_f64().unwrap() >= 0.9, "{report}");
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("Confusion matrix")
    );

    // A new actor: the served version can't be judged on the new classes.
    dataset(&photos, &[("rocket", "rocket.jpg")]);
    let changed = stdout(&train(&[]));
    assert!(
        changed.contains("registered actors version v3"),
        "{changed}"
    );
    assert!(
        changed.contains("not served: the actors changed since v1"),
        "{changed}"
    );
    let evaluate_old = failure(&starcast(&[
        "evaluate",
        version.to_str().unwrap(),
        "--data",
        photos.to_str().unwrap(),
    ]));
    assert!(
        evaluate_old.contains("classes the model doesn't know (rocket)"),
        "{evaluate_old}"
    );
}

#[test]
fn bad_datasets_get_a_sentence_and_register_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    dataset(&photos, &[("cat", "chelsea.png")]);
    std::fs::create_dir_all(photos.join("lonely")).unwrap();
    std::fs::copy(photos.join("cat/0.png"), photos.join("lonely/0.png")).unwrap();
    let registry = dir.path().join("registry");
    let base = data().join("models/mobilenet-v2-imagenet");
    let args = |data: &Path| {
        vec![
            "train".to_string(),
            "actors".into(),
            "--data".into(),
            data.display().to_string(),
            "--base".into(),
            base.display().to_string(),
            "--registry".into(),
            registry.display().to_string(),
            "--epochs".into(),
            "1".into(),
        ]
    };
    let run = |data: &Path| {
        let args = args(data);
        starcast(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let one_photo = failure(&run(&photos));
    assert!(
        one_photo.contains("'lonely' has only 1 photo"),
        "{one_photo}"
    );

    std::fs::remove_file(photos.join("lonely/0.png")).unwrap();
    let empty = failure(&run(&photos));
    assert!(
        empty.contains("lonely") && empty.contains("holds no photos"),
        "{empty}"
    );

    let missing = failure(&run(&dir.path().join("nowhere")));
    assert!(missing.contains("nowhere"), "{missing}");
    assert!(
        !registry.join("actors/versions").exists()
            || std::fs::read_dir(registry.join("actors/versions"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn arch_face_enrolls_a_gallery_that_names_the_held_out_faces() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    let examples = data().join("examples");
    std::fs::create_dir_all(photos.join("Barack Obama")).unwrap();
    std::fs::create_dir_all(photos.join("Joe Biden")).unwrap();
    for name in ["obama.jpg", "obama2.jpg", "obama3.jpg"] {
        std::fs::copy(examples.join(name), photos.join("Barack Obama").join(name)).unwrap();
    }
    // A second Biden photo: the same face, mirrored and cropped.
    let biden = image::open(examples.join("biden.jpg")).unwrap();
    biden.save(photos.join("Joe Biden/biden.png")).unwrap();
    let (w, h) = (biden.width(), biden.height());
    biden
        .crop_imm(w / 10, h / 10, w * 8 / 10, h * 8 / 10)
        .fliph()
        .save(photos.join("Joe Biden/biden-mirrored.png"))
        .unwrap();
    let registry = dir.path().join("registry");
    let faces = data().join("models/face-gallery");
    let output = starcast(&[
        "train",
        "actors",
        "--arch",
        "face",
        "--data",
        photos.to_str().unwrap(),
        "--faces",
        faces.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
        "--validation-share",
        "0.4",
    ]);
    let text = stdout(&output);
    assert!(text.contains("registered actors version v1"), "{text}");
    assert!(text.contains("accuracy 100.0% on 2 photos"), "{text}");
    assert!(text.contains("serving v1"), "{text}");
    let version = registry.join("actors/versions/v1");
    let gallery = std::fs::read_dir(version.join("gallery")).unwrap().count();
    assert_eq!(gallery, 2, "one folder per actor");
    let config = std::fs::read_to_string(version.join("config.json")).unwrap();
    assert!(
        config.contains(r#""task": "face-embedding""#) && config.contains(r#""version": "v1""#),
        "{config}"
    );

    let answer = stdout(&starcast(&[
        "predict",
        "actors",
        "--json",
        "--model",
        version.to_str().unwrap(),
        examples.join("obama3.jpg").to_str().unwrap(),
    ]));
    assert!(answer.contains(r#""label":"Barack Obama""#), "{answer}");
}

#[test]
fn a_crash_in_the_middle_of_training_resumes_from_the_last_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    dataset(&photos, &[("cat", "chelsea.png"), ("coffee", "coffee.png")]);
    let checkpoint = dir.path().join("checkpoint");
    let out = dir.path().join("model");
    let base = data().join("models/mobilenet-v2-imagenet");
    let args: Vec<String> = [
        "train",
        "actors",
        "--epochs",
        "30",
        "--patience",
        "30",
        "--batch",
        "4",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain(
        ["--data", "--base", "--checkpoint", "--out"]
            .iter()
            .zip([&photos, &base, &checkpoint, &out])
            .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()]),
    )
    .collect();
    crash_after_first_epoch(&args, &checkpoint);
    assert!(!out.exists(), "the run was killed before it finished");

    let rerun = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(stderr.contains("resuming after epoch"), "{stderr}");
    assert!(
        !checkpoint.exists(),
        "the checkpoint is removed when training ends"
    );
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training.json")).unwrap()).unwrap();
    let epochs: Vec<u64> = training["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        epochs,
        (1..=30).collect::<Vec<u64>>(),
        "every epoch once, none repeated"
    );

    // The same training unbroken: the weights and AdamW's moments came back
    // from the checkpoint, so every epoch's loss is the resumed run's.
    let unbroken_out = dir.path().join("unbroken");
    let unbroken_args: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == out.display().to_string() {
                unbroken_out.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let unbroken = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(&unbroken_args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(unbroken.status.success(), "{unbroken:?}");
    let (resumed, straight) = (
        epoch_losses(&out, "/history"),
        epoch_losses(&unbroken_out, "/history"),
    );
    for (epoch, (a, b)) in resumed.iter().zip(&straight).enumerate() {
        assert!(
            (a - b).abs() < 1e-6,
            "epoch {}: resumed loss {a}, unbroken {b}",
            epoch + 1
        );
    }
}
