//! Fine-tuning the packaged ImageNet MobileNetV2 (scripts/fetch-defaults.sh)
//! on a small dataset made from real photos: the trained folder loads in
//! the serving code as it is and names the right class.

use std::path::{Path, PathBuf};

use candle_core::Device;
use image::{DynamicImage, imageops};
use starcast_model::ActorRecognizer;
use starcast_model::vision::{ClassifierOptions, ImageClassifier, read_weights};
use starcast_train::{ImageFolder, Method, TrainOptions, fine_tune};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn sample(name: &str) -> DynamicImage {
    let path = data().join("samples").join(name);
    image::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/fetch-defaults.sh data",
            path.display()
        )
    })
}

/// A different view of the photo for each `i`: a crop at its own place
/// and size, mirrored every other time.
fn view(photo: &DynamicImage, i: u32) -> DynamicImage {
    let (w, h) = (photo.width(), photo.height());
    let (cw, ch) = (w * (70 + 4 * i) / 100, h * (70 + 4 * i) / 100);
    let (x, y) = ((w - cw) * (i % 3) / 2, (h - ch) * (i / 3 % 3) / 2);
    let crop = photo.crop_imm(x, y, cw, ch);
    if i % 2 == 1 { crop.fliph() } else { crop }
}

const CLASSES: [(&str, &str); 3] = [
    ("cat", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("rocket", "rocket.jpg"),
];

/// `root/<class>/<i>.png`, six views per class, plus a file that only
/// looks like a photo.
fn dataset(root: &Path) {
    for (class, file) in CLASSES {
        let photo = sample(file);
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..6 {
            let small = imageops::thumbnail(&view(&photo, i).to_rgb8(), 200, 200);
            small
                .save(root.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(root.join("cat/broken.jpg"), b"not a JPEG at all").unwrap();
}

fn base() -> (ImageClassifier, PathBuf) {
    let path = data().join("models/mobilenet-v2-imagenet");
    let classifier = ImageClassifier::load(&path, &ClassifierOptions::default())
        .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-defaults.sh data"));
    let weights = classifier.weights_path().unwrap().to_path_buf();
    (classifier, weights)
}

#[test]
fn head_only_fine_tuning_learns_the_classes_and_writes_a_servable_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dataset");
    dataset(&root);
    let (base, weights) = base();
    let options = TrainOptions {
        epochs: 5,
        batch: 8,
        validation_share: 0.34,
        ..TrainOptions::default()
    };
    let mut epochs_seen = 0;
    let trained = fine_tune(
        &base,
        read_weights(&weights).unwrap(),
        &ImageFolder::scan(&root).unwrap(),
        &options,
        &Device::Cpu,
        None,
        |event| {
            if let starcast_train::Progress::Epoch(_) = event {
                epochs_seen += 1;
            }
        },
    )
    .unwrap();
    assert_eq!(epochs_seen, trained.history.len());
    assert_eq!(trained.skipped.len(), 1, "{:?}", trained.skipped);
    assert!(trained.skipped[0].path.ends_with("cat/broken.jpg"));
    assert_eq!(trained.report.examples, 6, "two held-out views per class");
    assert_eq!(trained.report.accuracy, 1.0, "{:?}", trained.history);

    let folder = dir.path().join("model");
    trained
        .save(&folder, "mobilenet_v2-actors", &options)
        .unwrap();
    for file in [
        "model.safetensors",
        "config.json",
        "metrics.json",
        "training.json",
        "curves.svg",
    ] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }
    let served = ImageClassifier::load(&folder, &ClassifierOptions::default()).unwrap();
    assert_eq!(served.info().labels, ["cat", "coffee", "rocket"]);
    assert_eq!(served.info().metrics["accuracy"], 1.0);
    let fresh = sample("coffee.png").crop_imm(40, 30, 300, 300);
    let answer = served.recognize(&fresh).unwrap();
    assert_eq!(
        answer.predictions[0].label, "coffee",
        "{:?}",
        answer.predictions
    );
}

#[test]
fn full_fine_tuning_trains_batchnorm_and_saves_its_running_averages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dataset");
    dataset(&root);
    let (base, weights) = base();
    let base_tensors = read_weights(&weights).unwrap();
    let options = TrainOptions {
        epochs: 1,
        batch: 6,
        validation_share: 0.34,
        method: Method::Full,
        learning_rate: Method::Full.default_learning_rate(),
        ..TrainOptions::default()
    };
    let trained = fine_tune(
        &base,
        base_tensors.clone(),
        &ImageFolder::scan(&root).unwrap(),
        &options,
        &Device::Cpu,
        None,
        |_| {},
    )
    .unwrap();
    let changed = |name: &str| {
        let before = &base_tensors[name];
        let after = &trained.tensors[name];
        let diff: f32 = (before - after)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        diff > 0.0
    };
    assert!(
        changed("features.0.1.running_mean"),
        "BatchNorm statistics moved"
    );
    assert!(
        changed("features.0.0.weight"),
        "the first convolution learned"
    );
    assert!(
        changed("features.2.conv.1.0.weight"),
        "a depthwise convolution learned"
    );
    assert_eq!(trained.tensors["classifier.1.weight"].dims(), &[3, 1280]);
    assert!(trained.history[0].train_loss.is_finite());
    let folder = dir.path().join("model");
    trained.save(&folder, "full", &options).unwrap();
    let served = ImageClassifier::load(&folder, &ClassifierOptions::default()).unwrap();
    assert_eq!(served.info().labels, ["cat", "coffee", "rocket"]);
}
