//! "Training" a face-gallery model: a pretrained face detector and
//! descriptor network need no gradient steps; the model learns the actors
//! by enrolling their photos. This writes such a folder from a dataset.

use std::path::{Path, PathBuf};

/// The folder a face-gallery model keeps its enrolled photos in.
const GALLERY_DIR: &str = "gallery";

#[derive(Debug, thiserror::Error)]
#[error("could not write the gallery model at {path}: {source}")]
pub struct GalleryError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Copies the face model's files (everything but its gallery and its
/// evaluation) to `out`, then enrolls `photos` as `gallery/<actor>/`.
pub fn write_gallery(
    face_model: &Path,
    photos: &[(PathBuf, String)],
    out: &Path,
) -> Result<(), GalleryError> {
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GalleryError { path, source }
    };
    std::fs::create_dir_all(out).map_err(error(out))?;
    for entry in std::fs::read_dir(face_model).map_err(error(face_model))? {
        let path = entry.map_err(error(face_model))?.path();
        let name = path.file_name().unwrap_or_default();
        let skipped = ["metrics.json", "lineage.json", "training.json"];
        if path.is_file() && !skipped.iter().any(|s| name == *s) {
            std::fs::copy(&path, out.join(name)).map_err(error(&path))?;
        }
    }
    for (index, (photo, actor)) in photos.iter().enumerate() {
        let folder = out.join(GALLERY_DIR).join(actor);
        std::fs::create_dir_all(&folder).map_err(error(&folder))?;
        let name = photo.file_name().unwrap_or_default().to_string_lossy();
        // Photos of one actor may share a name from different source folders.
        let target = folder.join(format!("{index:05}-{name}"));
        std::fs::copy(photo, &target).map_err(error(photo))?;
    }
    Ok(())
}
