//! Actor recognition without training: find each face, describe it with
//! face-api's descriptor network, and name it after the nearest person in
//! a gallery of labelled photos (`gallery/<actor>/<photo>`).

mod detector;
mod embedding;
mod gallery;

use std::path::{Path, PathBuf};

use candle_core::Device;
use image::DynamicImage;

pub use detector::{FaceBox, FaceDetector};
pub use embedding::{DESCRIPTOR_LEN, FaceEmbedder, INPUT_SIDE};
pub use gallery::{DEFAULT_THRESHOLD, Gallery, Identity, UNKNOWN};

use crate::folder::{Files, LoadError, ModelFolder};
use crate::photo::decode_photo;
use crate::vision::read_tfjs;
use crate::vision::weights::build_exactly;
use crate::{ActorRecognizer, Face, ModelError, ModelInfo, Prediction, Recognition};

/// The files of a face-gallery model folder.
pub const EMBEDDER_MANIFEST: &str = "face_recognition_model-weights_manifest.json";
pub const DETECTOR_FILE: &str = "seeta_fd_frontal_v1.0.bin";
/// The most faces of one photo that get a descriptor (the largest): each
/// costs a network pass, so a crowd photo can't hold a worker for long.
pub const MAX_FACES: usize = 10;
pub const GALLERY_DIR: &str = "gallery";

/// A face detector and the descriptor network, from a face-gallery model
/// folder: what recognition and dataset cleaning both need.
pub struct FaceTools {
    pub detector: FaceDetector,
    pub embedder: FaceEmbedder,
}

impl FaceTools {
    /// Loads the detector and descriptor files of a model folder.
    pub fn load(files: &Files, folder: &Path) -> Result<Self, LoadError> {
        let detector = FaceDetector::load(files, &folder.join(DETECTOR_FILE))?;
        let manifest = folder.join(EMBEDDER_MANIFEST);
        let embedder = build_exactly(
            read_tfjs(files, &manifest)?,
            &Device::Cpu,
            FaceEmbedder::load,
        )
        .map_err(|source| LoadError::Network {
            path: manifest.clone(),
            source,
        })?;
        Ok(FaceTools { detector, embedder })
    }

    /// The descriptor of one detected face, from exactly the detector's box:
    /// on the face_recognition photos a box grown by 10% or 40% brought
    /// different people closer (Obama-Biden 0.70 -> 0.53) and the same
    /// person no closer.
    pub fn describe(&self, photo: &DynamicImage, face: &FaceBox) -> candle_core::Result<Vec<f32>> {
        let [x, y, w, h] = face.bounds;
        self.embedder.embed(&photo.crop_imm(x, y, w, h).to_rgb8())
    }
}

/// Finds faces and names them from a gallery.
pub struct FaceGalleryRecognizer {
    tools: FaceTools,
    gallery: Gallery,
    info: ModelInfo,
    /// Its folder, when read from disk.
    location: Option<PathBuf>,
}

impl FaceGalleryRecognizer {
    /// Loads a face-gallery model folder and enrolls its gallery.
    pub fn load(folder: &ModelFolder) -> Result<Self, LoadError> {
        let tools = FaceTools::load(&folder.files, &folder.path)?;
        let threshold = folder.config.threshold.unwrap_or(DEFAULT_THRESHOLD);
        let mut recognizer = FaceGalleryRecognizer {
            tools,
            gallery: Gallery {
                identities: Vec::new(),
                threshold,
            },
            info: folder.info(),
            location: matches!(folder.files, Files::Disk).then(|| folder.path.clone()),
        };
        recognizer.gallery.identities =
            recognizer.enroll(&folder.files, &folder.path.join(GALLERY_DIR))?;
        recognizer.info.labels = recognizer.gallery.labels();
        Ok(recognizer)
    }

    /// One identity per sub-folder, from the largest face of each photo.
    fn enroll(&self, files: &Files, gallery: &Path) -> Result<Vec<Identity>, LoadError> {
        let people: Vec<PathBuf> = files
            .entries(gallery)?
            .into_iter()
            .filter(|p| files.is_dir(p))
            .collect();
        let mut identities = Vec::new();
        for person in people {
            let label = person
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let photos: Vec<PathBuf> = files
                .entries(&person)?
                .into_iter()
                .filter(|p| files.is_file(p))
                .collect();
            let mut descriptors = Vec::new();
            for photo in photos {
                match self.enroll_photo(files, &photo) {
                    Ok(descriptor) => descriptors.push(descriptor),
                    Err(reason) => {
                        tracing::warn!(photo = %photo.display(), "{reason}; left out of the gallery")
                    }
                }
            }
            if descriptors.is_empty() {
                tracing::warn!(person = %label, "no usable photo; left out of the gallery");
            } else {
                identities.push(Identity { label, descriptors });
            }
        }
        if identities.is_empty() {
            return Err(LoadError::MissingWeights {
                folder: gallery.to_path_buf(),
                expected: "<person>/<photo> with one face per photo".into(),
            });
        }
        Ok(identities)
    }

    fn enroll_photo(&self, files: &Files, path: &Path) -> Result<Vec<f32>, String> {
        let bytes = files.read(path).map_err(|e| e.to_string())?;
        let photo = decode_photo(&bytes).map_err(|e| e.to_string())?.image;
        let face = self
            .tools
            .detector
            .detect(&photo)
            .into_iter()
            .next()
            .ok_or("no face found")?;
        self.describe(&photo, &face).map_err(|e| e.to_string())
    }

    /// The descriptor of one detected face.
    pub fn describe(&self, photo: &DynamicImage, face: &FaceBox) -> candle_core::Result<Vec<f32>> {
        self.tools.describe(photo, face)
    }

    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    pub fn detector(&self) -> &FaceDetector {
        &self.tools.detector
    }
}

impl ActorRecognizer for FaceGalleryRecognizer {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn location(&self) -> Option<&Path> {
        self.location.as_deref()
    }

    /// Every face gets its own predictions, up to the [`MAX_FACES`]
    /// largest; the photo's are its largest face's, or "unknown" when
    /// there is no face.
    fn recognize(&self, photo: &DynamicImage) -> Result<Recognition, ModelError> {
        let failed = |e: candle_core::Error| ModelError::tensors(self.info.name.clone(), e);
        let faces = self
            .tools
            .detector
            .detect(photo)
            .iter()
            .take(MAX_FACES)
            .map(|face| {
                let descriptor = self.describe(photo, face).map_err(failed)?;
                Ok(Face {
                    bounds: face.bounds,
                    predictions: self.gallery.rank(&descriptor),
                })
            })
            .collect::<Result<Vec<Face>, ModelError>>()?;
        let predictions = faces.first().map_or_else(
            || {
                vec![Prediction {
                    label: UNKNOWN.into(),
                    score: 1.0,
                }]
            },
            |face| face.predictions.clone(),
        );
        Ok(Recognition { predictions, faces })
    }
}
