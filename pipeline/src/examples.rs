//! The examples gallery: photos in a folder that the Actors page offers to
//! try with one click.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const PHOTO_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// A folder of example photos. A missing folder is an empty gallery.
#[derive(Clone, Debug)]
pub struct ExamplePhotos {
    dir: PathBuf,
}

impl ExamplePhotos {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ExamplePhotos { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The photo file names, sorted.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && is_example_name(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

fn is_example_name(name: &str) -> bool {
    let plain = !name.starts_with('.');
    let extension = Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase());
    plain && extension.is_some_and(|e| PHOTO_EXTENSIONS.contains(&e.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_photos_only() {
        let dir = tempfile::tempdir().unwrap();
        let gallery = ExamplePhotos::new(dir.path().join("examples"));
        assert!(gallery.list().unwrap().is_empty());
        fs::create_dir(gallery.dir()).unwrap();
        for name in ["b.JPG", "a.png", "notes.txt", ".hidden.png"] {
            fs::write(gallery.dir().join(name), b"x").unwrap();
        }
        fs::write(dir.path().join("secret.png"), b"x").unwrap();
        assert_eq!(gallery.list().unwrap(), ["a.png", "b.JPG"]);
    }
}
