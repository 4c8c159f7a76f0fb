//! A folder of photos, one subfolder per class, read the way torchvision's
//! `ImageFolder` reads it: classes in sorted folder-name order, photos by
//! extension, hidden entries skipped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The extensions torchvision's `ImageFolder` accepts, compared lowercased.
const PHOTO_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// A dataset: class names in index order and the photos of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFolder {
    pub classes: Vec<String>,
    /// `(path, class index)`, grouped by class, sorted by path within a class.
    pub samples: Vec<(PathBuf, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageFolderError {
    #[error("could not read the dataset folder {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the dataset folder {0} has no class subfolders: put each actor's photos in <folder>/<actor name>/"
    )]
    NoClasses(PathBuf),
    #[error(
        "the class folder {0} holds no photos (.jpg, .jpeg, .png, .bmp, .webp, ...): add some or remove the folder"
    )]
    EmptyClass(PathBuf),
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}

fn is_photo(path: &Path) -> bool {
    path.extension().is_some_and(|ext| {
        let ext = ext.to_string_lossy().to_lowercase();
        PHOTO_EXTENSIONS.contains(&ext.as_str())
    })
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, ImageFolderError> {
    let io_error = |source| ImageFolderError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = fs::read_dir(dir)
        .map_err(io_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error)?;
    paths.retain(|p| !is_hidden(p));
    paths.sort();
    Ok(paths)
}

impl ImageFolder {
    /// Reads `root/<class>/<photo>`.
    pub fn scan(root: &Path) -> Result<Self, ImageFolderError> {
        let class_dirs: Vec<PathBuf> = entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
        if class_dirs.is_empty() {
            return Err(ImageFolderError::NoClasses(root.to_path_buf()));
        }
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut samples = Vec::new();
        for (index, dir) in class_dirs.iter().enumerate() {
            let photos: Vec<PathBuf> = entries(dir)?
                .into_iter()
                .filter(|p| p.is_file() && is_photo(p))
                .collect();
            if photos.is_empty() {
                return Err(ImageFolderError::EmptyClass(dir.clone()));
            }
            classes.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            samples.extend(photos.into_iter().map(|p| (p, index)));
        }
        Ok(ImageFolder { classes, samples })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn classes_are_in_sorted_folder_order_like_torchvision() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("Tom Hanks/b.JPG"));
        touch(&root.join("Tom Hanks/a.png"));
        touch(&root.join("Tom Hanks/notes.txt"));
        touch(&root.join("Emma Stone/1.jpeg"));
        touch(&root.join("Brad Pitt/x.webp"));
        touch(&root.join(".ipynb_checkpoints/y.png"));
        touch(&root.join("dataset.zip"));
        let folder = ImageFolder::scan(root).unwrap();
        assert_eq!(folder.classes, ["Brad Pitt", "Emma Stone", "Tom Hanks"]);
        let names: Vec<(String, usize)> = folder
            .samples
            .iter()
            .map(|(p, i)| (p.file_name().unwrap().to_string_lossy().into_owned(), *i))
            .collect();
        assert_eq!(
            names,
            [
                ("x.webp".into(), 0),
                ("1.jpeg".into(), 1),
                ("a.png".into(), 2),
                ("b.JPG".into(), 2)
            ]
        );
    }

    #[test]
    fn an_empty_class_or_dataset_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ImageFolder::scan(dir.path()).unwrap_err();
        assert!(matches!(err, ImageFolderError::NoClasses(_)), "{err}");
        touch(&dir.path().join("Keanu/readme.txt"));
        let err = ImageFolder::scan(dir.path()).unwrap_err();
        assert!(err.to_string().contains("Keanu"), "{err}");
        assert!(ImageFolder::scan(&dir.path().join("missing")).is_err());
    }
}
