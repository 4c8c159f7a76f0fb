//! `dataset clean` on real photos (face_recognition's and scikit-image's,
//! fetched by scripts/fetch-defaults.sh) with a problem of every kind
//! planted, using the demo face gallery's detector and descriptor network.

use std::fs;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImageView};
use starcast_model::faces::FaceTools;
use starcast_model::folder::Files;
use starcast_pipeline::dataset::{
    CleanSettings, apply_verdicts, judge_dataset, quarantine_of, report_of,
};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn photo(path: &str) -> DynamicImage {
    image::open(data().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}: run scripts/fetch-defaults.sh data"))
}

fn copy(from: &str, to: &Path) {
    fs::copy(data().join(from), to).unwrap();
}

#[test]
fn every_kind_of_bad_photo_is_quarantined_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("actors");
    let obama = root.join("Barack Obama");
    let other = root.join("Cat");
    fs::create_dir_all(&obama).unwrap();
    fs::create_dir_all(&other).unwrap();
    copy("examples/obama.jpg", &obama.join("a.jpg"));
    copy("examples/obama2.jpg", &obama.join("b.jpg"));
    copy("examples/obama3.jpg", &obama.join("c.jpg"));
    copy("examples/obama.jpg", &obama.join("e-copy.jpg"));
    photo("examples/obama3.jpg")
        .resize(700, 1200, image::imageops::FilterType::Triangle)
        .save(obama.join("f-smaller.png"))
        .unwrap();
    copy("examples/biden.jpg", &obama.join("g-biden.jpg"));
    // Mirrored, so the perceptual hash doesn't call them near duplicates.
    photo("examples/obama2.jpg")
        .fliph()
        .blur(4.0)
        .save(obama.join("h-blurred.png"))
        .unwrap();
    let group = {
        let left = photo("examples/obama3.jpg")
            .view(500, 150, 600, 600)
            .to_image();
        let right = photo("examples/biden.jpg")
            .view(300, 100, 600, 600)
            .to_image();
        let mut group = image::RgbaImage::new(1200, 600);
        image::imageops::overlay(&mut group, &left, 0, 0);
        image::imageops::overlay(&mut group, &right, 600, 0);
        group
    };
    group.save(obama.join("i-group.png")).unwrap();
    photo("examples/obama3.jpg")
        .fliph()
        .resize(150, 240, image::imageops::FilterType::Triangle)
        .save(obama.join("j-tiny.png"))
        .unwrap();
    let png = fs::read(data().join("samples/32bit.png")).unwrap();
    fs::write(obama.join("k-broken.png"), &png[..png.len() / 3]).unwrap();
    copy("samples/chelsea.png", &other.join("cat.png"));

    let faces = FaceTools::load(&Files::Disk, &data().join("models/face-gallery")).unwrap();
    let verdicts = judge_dataset(&root, &faces, &CleanSettings::default()).unwrap();
    let kinds: Vec<(String, &str)> = verdicts
        .iter()
        .map(|v| {
            (
                v.path.file_name().unwrap().to_string_lossy().into_owned(),
                v.rejected.as_ref().map_or("kept", |r| r.kind()),
            )
        })
        .collect();
    let expect = |file: &str, kind: &str| {
        let found = kinds.iter().find(|(f, _)| f == file).map(|(_, k)| *k);
        assert_eq!(found, Some(kind), "{file}: {kinds:?}");
    };
    for file in ["a.jpg", "b.jpg", "c.jpg"] {
        expect(file, "kept");
    }
    expect("e-copy.jpg", "duplicate");
    expect("f-smaller.png", "near duplicate");
    expect("g-biden.jpg", "another person");
    expect("h-blurred.png", "blurred");
    expect("i-group.png", "several faces");
    expect("j-tiny.png", "face too small");
    expect("k-broken.png", "undecodable");
    expect("cat.png", "no face");

    apply_verdicts(&root, &verdicts).unwrap();
    let quarantine = quarantine_of(&root);
    assert!(quarantine.join("Barack Obama/g-biden.jpg").is_file());
    assert!(!obama.join("g-biden.jpg").exists());
    assert_eq!(
        fs::read_dir(&obama).unwrap().count(),
        3,
        "only the good photos stay"
    );
    let reasons = fs::read_to_string(quarantine.join("reasons.csv")).unwrap();
    assert_eq!(reasons.lines().count(), 1 + 8, "{reasons}");
    let report = fs::read_to_string(report_of(&root)).unwrap();
    assert!(report.contains("3 of 11 photos kept"), "{report}");
    assert!(
        report.contains("actors.quarantine/Barack%20Obama/g-biden.jpg"),
        "{report}"
    );
}
