//! The face gallery on real photos: the demo gallery of
//! scripts/fetch-defaults.sh (face_recognition's Obama and Biden photos,
//! face-api's descriptor network, SeetaFace's detector).

use std::path::PathBuf;
use std::sync::OnceLock;

use image::{DynamicImage, GenericImageView, RgbImage};
use starcast_model::ActorRecognizer;
use starcast_model::faces::{FaceBox, FaceGalleryRecognizer, MAX_FACES, UNKNOWN};
use starcast_model::folder::ModelFolder;
use starcast_model::photo::decode_photo;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn gallery() -> &'static FaceGalleryRecognizer {
    static GALLERY: OnceLock<FaceGalleryRecognizer> = OnceLock::new();
    GALLERY.get_or_init(|| {
        let folder = data().join("models/face-gallery");
        let folder = ModelFolder::open(&folder)
            .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-defaults.sh data"));
        FaceGalleryRecognizer::load(&folder).unwrap()
    })
}

fn photo(path: &str) -> DynamicImage {
    decode_photo(&std::fs::read(data().join(path)).unwrap())
        .unwrap()
        .image
}

#[test]
fn the_gallery_enrolls_one_identity_per_folder() {
    let labels = &gallery().info().labels;
    assert_eq!(labels, &["Barack Obama", "Joe Biden", UNKNOWN]);
}

#[test]
fn a_photo_outside_the_gallery_is_recognised() {
    let recognition = gallery().recognize(&photo("examples/obama3.jpg")).unwrap();
    assert_eq!(recognition.faces.len(), 1);
    assert_eq!(recognition.predictions[0].label, "Barack Obama");
    let total: f32 = recognition.predictions.iter().map(|p| p.score).sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
    let [x, y, w, h] = recognition.faces[0].bounds;
    assert!(
        x + w <= 1434 && y + h <= 2333 && w > 100,
        "{:?}",
        recognition.faces[0].bounds
    );
}

#[test]
fn a_transparent_png_is_recognised() {
    let recognition = gallery().recognize(&photo("samples/32bit.png")).unwrap();
    assert_eq!(recognition.predictions[0].label, "Barack Obama");
}

#[test]
fn a_stranger_is_unknown() {
    let recognition = gallery()
        .recognize(&photo("samples/astronaut.png"))
        .unwrap();
    assert_eq!(recognition.faces.len(), 1);
    assert_eq!(recognition.predictions[0].label, UNKNOWN);
}

#[test]
fn a_photo_without_faces_is_unknown_with_no_boxes() {
    for image in [
        photo("samples/chelsea.png"),
        DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
    ] {
        let recognition = gallery().recognize(&image).unwrap();
        assert!(recognition.faces.is_empty());
        assert_eq!(recognition.predictions[0].label, UNKNOWN);
        assert_eq!(recognition.predictions[0].score, 1.0);
    }
}

#[test]
fn each_face_of_a_group_photo_gets_its_own_answer() {
    // Two people side by side: the faces of obama3.jpg and biden.jpg.
    let obama = photo("examples/obama3.jpg")
        .view(500, 150, 600, 600)
        .to_image();
    let biden = photo("examples/biden.jpg")
        .view(300, 100, 600, 600)
        .to_image();
    let mut group = image::RgbaImage::new(1200, 600);
    image::imageops::overlay(&mut group, &obama, 0, 0);
    image::imageops::overlay(&mut group, &biden, 600, 0);
    let recognition = gallery()
        .recognize(&DynamicImage::ImageRgba8(group))
        .unwrap();
    assert_eq!(recognition.faces.len(), 2, "{:?}", recognition.faces);
    let mut named: Vec<(u32, &str)> = recognition
        .faces
        .iter()
        .map(|f| (f.bounds[0], f.predictions[0].label.as_str()))
        .collect();
    named.sort();
    assert_eq!(named[0].1, "Barack Obama");
    assert_eq!(named[1].1, "Joe Biden");
    assert!(named[1].0 >= 600);
}

#[test]
fn a_crowd_photo_gets_answers_for_its_largest_faces_only() {
    let face = photo("examples/obama3.jpg")
        .view(500, 150, 600, 600)
        .to_image();
    let (columns, rows, size) = (4, 3, 300);
    let mut crowd = image::RgbaImage::new(columns * size, rows * size);
    for i in 0..columns * rows {
        // Each face a little smaller than the one before, so "largest" means something.
        let side = size - 8 * i;
        let small =
            image::imageops::resize(&face, side, side, image::imageops::FilterType::Triangle);
        let (x, y) = (i % columns * size, i / columns * size);
        image::imageops::overlay(&mut crowd, &small, i64::from(x), i64::from(y));
    }
    let crowd = DynamicImage::ImageRgba8(crowd);
    let found = gallery().detector().detect(&crowd);
    assert!(
        found.len() > MAX_FACES,
        "the detector found only {} faces",
        found.len()
    );
    let recognition = gallery().recognize(&crowd).unwrap();
    assert_eq!(recognition.faces.len(), MAX_FACES);
    let area = |b: [u32; 4]| b[2] * b[3];
    let smallest_kept = recognition
        .faces
        .iter()
        .map(|f| area(f.bounds))
        .min()
        .unwrap();
    let largest_left = found[MAX_FACES..]
        .iter()
        .map(|f| area(f.bounds))
        .max()
        .unwrap();
    assert!(smallest_kept >= largest_left);
    assert!(
        recognition
            .faces
            .iter()
            .all(|f| f.predictions[0].label == "Barack Obama")
    );
}

#[test]
fn descriptors_match_face_api_in_a_browser() {
    // scripts/reference/face_descriptors.mjs ran face-api 1.7.15 itself
    // (TensorFlow.js CPU backend in Chromium) on these boxes.
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/face_descriptors.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for face in reference["faces"].as_array().unwrap() {
        let name = face["photo"].as_str().unwrap();
        let numbers = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let b = numbers(&face["box"]);
        let bounds = [b[0] as u32, b[1] as u32, b[2] as u32, b[3] as u32];
        let ours = gallery()
            .describe(&photo(name), &FaceBox { bounds, score: 0.0 })
            .unwrap();
        let theirs = numbers(&face["descriptor"]);
        assert_eq!(ours.len(), theirs.len());
        let distance = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (f64::from(*a) - b).powi(2))
            .sum::<f64>()
            .sqrt();
        // Same person is about 0.4 apart, different people 0.65. PNGs decode
        // identically in Chromium and here; JPEG decoders differ by a level.
        let tolerance = if name.ends_with(".png") { 1e-4 } else { 5e-3 };
        assert!(
            distance < tolerance,
            "{name}: {distance} from face-api's descriptor"
        );
    }
}
