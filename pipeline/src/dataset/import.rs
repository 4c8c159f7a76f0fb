//! `starcast dataset import`: the lab's `dataset.zip` (or a folder) laid
//! out as `<actor>/<photo>` under a dataset folder. Entries whose path would
//! leave the target folder are refused, not skipped quietly.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a readable zip archive: {reason}")]
    Zip { path: PathBuf, reason: String },
    #[error(
        "the archive entry '{0}' would be written outside the dataset folder; nothing was imported"
    )]
    Escapes(String),
    #[error("{0} holds no <actor>/<photo> files")]
    Empty(PathBuf),
}

/// What an import brought in: files per class folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub target: PathBuf,
    pub classes: Vec<(String, usize)>,
}

fn io(path: &Path) -> impl Fn(io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Imports `source` (a `.zip` or a folder) into `target`. A single
/// top-level folder in the archive (`dataset/<actor>/...`) is unwrapped.
/// The old dataset stays in place until the new one is complete: it is
/// renamed aside, the new one renamed in, and only then is it removed; an
/// import cut short between the two renames is undone by the next one.
pub fn import_dataset(source: &Path, target: &Path) -> Result<Imported, ImportError> {
    let aside = target.with_extension("replaced");
    if !target.exists() && aside.exists() {
        fs::rename(&aside, target).map_err(io(target))?;
    }
    let staging = target.with_extension("importing");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(io(&staging))?;
    let copied = if source.is_dir() {
        copy_folder(source, &staging)
    } else {
        unzip(source, &staging)
    };
    if let Err(error) = copied {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    let root = unwrap_single_folder(&staging).map_err(io(&staging))?;
    let classes = count_classes(&root).map_err(io(&root))?;
    if classes.is_empty() {
        let _ = fs::remove_dir_all(&staging);
        return Err(ImportError::Empty(source.to_path_buf()));
    }
    let _ = fs::remove_dir_all(&aside);
    let replacing = target.exists();
    if replacing {
        fs::rename(target, &aside).map_err(io(target))?;
    }
    fs::rename(&root, target).map_err(io(target))?;
    if replacing {
        let _ = fs::remove_dir_all(&aside);
    }
    let _ = fs::remove_dir_all(&staging);
    Ok(Imported {
        target: target.to_path_buf(),
        classes,
    })
}

fn unzip(source: &Path, staging: &Path) -> Result<(), ImportError> {
    let file = fs::File::open(source).map_err(io(source))?;
    let zip_error = |e: zip::result::ZipError| ImportError::Zip {
        path: source.to_path_buf(),
        reason: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    // Check every name first, so a hostile archive writes nothing at all.
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(zip_error)?;
        if entry.enclosed_name().is_none() {
            return Err(ImportError::Escapes(
                entry.name().map(|n| n.into_owned()).unwrap_or_default(),
            ));
        }
    }
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(zip_error)?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(ImportError::Escapes(
                entry.name().map(|n| n.into_owned()).unwrap_or_default(),
            ));
        };
        if relative
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("__MACOSX"))
        {
            continue;
        }
        let path = staging.join(relative);
        if entry.is_dir() {
            fs::create_dir_all(&path).map_err(io(&path))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = fs::File::create(&path).map_err(io(&path))?;
        io::copy(&mut entry, &mut out).map_err(io(&path))?;
    }
    Ok(())
}

fn copy_folder(source: &Path, staging: &Path) -> Result<(), ImportError> {
    for entry in fs::read_dir(source).map_err(io(source))? {
        let entry = entry.map_err(io(source))?;
        let path = entry.path();
        let target = staging.join(entry.file_name());
        if path.is_dir() {
            fs::create_dir_all(&target).map_err(io(&target))?;
            copy_folder(&path, &target)?;
        } else if path.is_file() {
            fs::copy(&path, &target).map_err(io(&target))?;
        }
    }
    Ok(())
}

/// `dataset/<actor>/...` -> `<actor>/...`.
fn unwrap_single_folder(root: &Path) -> io::Result<PathBuf> {
    let entries: Vec<PathBuf> = fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    match entries.as_slice() {
        [only] if only.is_dir() && !count_classes(only)?.is_empty() => Ok(only.clone()),
        _ => Ok(root.to_path_buf()),
    }
}

/// Class folders and their file counts, sorted by name.
pub fn count_classes(root: &Path) -> io::Result<Vec<(String, usize)>> {
    let mut classes = Vec::new();
    for entry in fs::read_dir(root)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let files = fs::read_dir(&path)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .count();
        if files > 0 {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            classes.push((name, files));
        }
    }
    classes.sort();
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = zip::ZipWriter::new(fs::File::create(file.path()).unwrap());
        for (name, bytes) in entries {
            writer
                .start_file(
                    *name,
                    zip::write::SimpleFileOptions::default()
                        .compression_method(zip::CompressionMethod::Deflated),
                )
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
        file
    }

    #[test]
    fn the_labs_zip_becomes_class_folders() {
        let zip = zip_with(&[
            ("dataset/Keanu Reeves/1.jpg", b"a"),
            ("dataset/Keanu Reeves/2.jpg", b"b"),
            ("dataset/Tom Hanks/1.jpg", b"c"),
            ("__MACOSX/dataset/._1.jpg", b"junk"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("actors");
        let imported = import_dataset(zip.path(), &target).unwrap();
        assert_eq!(
            imported.classes,
            vec![
                ("Keanu Reeves".to_string(), 2),
                ("Tom Hanks".to_string(), 1)
            ]
        );
        assert_eq!(fs::read(target.join("Tom Hanks/1.jpg")).unwrap(), b"c");
    }

    #[test]
    fn a_failed_import_keeps_the_old_dataset_and_a_cut_one_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("actors");
        let old = zip_with(&[("Ada/1.jpg", b"old")]);
        import_dataset(old.path(), &target).unwrap();
        let broken = tempfile::NamedTempFile::new().unwrap();
        fs::write(broken.path(), b"not a zip").unwrap();
        assert!(import_dataset(broken.path(), &target).is_err());
        assert_eq!(fs::read(target.join("Ada/1.jpg")).unwrap(), b"old");
        // A crash between renaming the old one aside and the new one in.
        fs::rename(&target, target.with_extension("replaced")).unwrap();
        let new = zip_with(&[("Bea/1.jpg", b"new")]);
        assert!(import_dataset(broken.path(), &target).is_err());
        assert_eq!(
            fs::read(target.join("Ada/1.jpg")).unwrap(),
            b"old",
            "restored"
        );
        import_dataset(new.path(), &target).unwrap();
        assert!(!target.join("Ada").exists());
        assert_eq!(fs::read(target.join("Bea/1.jpg")).unwrap(), b"new");
        assert!(!target.with_extension("replaced").exists());
    }

    #[test]
    fn an_escaping_entry_is_refused_and_nothing_is_written() {
        let zip = zip_with(&[("ok/1.jpg", b"a"), ("../../evil.sh", b"rm -rf /")]);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("actors");
        let err = import_dataset(zip.path(), &target).unwrap_err();
        assert!(
            matches!(err, ImportError::Escapes(ref name) if name == "../../evil.sh"),
            "{err}"
        );
        assert!(!target.exists());
        assert!(!dir.path().join("evil.sh").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_non_zip_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), b"not a zip").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = import_dataset(file.path(), &dir.path().join("x")).unwrap_err();
        assert!(
            err.to_string().contains("not a readable zip archive"),
            "{err}"
        );
    }
}
