//! Finding faces: SeetaFace's frontal detector through the pure-Rust
//! `rustface` crate (its model ships inside the crate; set-up copies it
//! into the model folder).

use std::path::Path;

use image::{DynamicImage, GrayImage, imageops};

use crate::folder::{Files, LoadError};

/// Photos are searched at most this many pixels a side; boxes are mapped
/// back to the full photo. Faces smaller than 20 pixels at this scale are
/// not found.
const SEARCH_SIDE: u32 = 1024;
/// The detector's smallest window.
const MIN_FACE: u32 = 20;
/// SeetaFace's score threshold; its authors suggest 0.95, 2.8 or 4.5.
const MIN_SCORE: f64 = 2.0;

/// One face: `[x, y, width, height]` in photo pixels, and how sure the detector is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    pub bounds: [u32; 4],
    pub score: f64,
}

/// The detector's weights; each search builds its own detector from them,
/// so searches run in parallel.
pub struct FaceDetector {
    model: rustface::Model,
}

impl FaceDetector {
    pub fn load(files: &Files, path: &Path) -> Result<Self, LoadError> {
        let file = files.reader(path)?;
        let model = rustface::read_model(std::io::BufReader::new(file)).map_err(|e| {
            LoadError::Weights {
                path: path.to_path_buf(),
                reason: format!("not a SeetaFace detector model ({e})"),
            }
        })?;
        Ok(FaceDetector { model })
    }

    /// The faces in a photo, largest first.
    pub fn detect(&self, photo: &DynamicImage) -> Vec<FaceBox> {
        let (w, h) = (photo.width(), photo.height());
        if w.min(h) < MIN_FACE {
            return Vec::new();
        }
        let scale = (f64::from(w.max(h)) / f64::from(SEARCH_SIDE)).max(1.0);
        let gray: GrayImage = if scale > 1.0 {
            let (sw, sh) = ((f64::from(w) / scale) as u32, (f64::from(h) / scale) as u32);
            imageops::resize(
                &photo.to_luma8(),
                sw.max(1),
                sh.max(1),
                imageops::FilterType::Triangle,
            )
        } else {
            photo.to_luma8()
        };
        if gray.width().min(gray.height()) < MIN_FACE {
            return Vec::new();
        }
        let mut detector = rustface::create_detector_with_model(self.model.clone());
        detector.set_min_face_size(MIN_FACE);
        detector.set_score_thresh(MIN_SCORE);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        let image = rustface::ImageData::new(gray.as_raw(), gray.width(), gray.height());
        let mut faces: Vec<FaceBox> = detector
            .detect(&image)
            .into_iter()
            .filter_map(|face| {
                let b = face.bbox();
                let x = (f64::from(b.x().max(0)) * scale) as u32;
                let y = (f64::from(b.y().max(0)) * scale) as u32;
                let right = ((f64::from(b.x()) + f64::from(b.width())) * scale).min(f64::from(w));
                let bottom = ((f64::from(b.y()) + f64::from(b.height())) * scale).min(f64::from(h));
                let (bw, bh) = (
                    (right as u32).saturating_sub(x),
                    (bottom as u32).saturating_sub(y),
                );
                (bw > 0 && bh > 0).then_some(FaceBox {
                    bounds: [x, y, bw, bh],
                    score: face.score(),
                })
            })
            .collect();
        faces.sort_by_key(|f| std::cmp::Reverse(u64::from(f.bounds[2]) * u64::from(f.bounds[3])));
        faces
    }
}
