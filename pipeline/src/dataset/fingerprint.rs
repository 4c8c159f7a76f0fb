//! A dataset's fingerprint: one hash over every file's path and content,
//! what a version's lineage records and what tells the scheduler that the
//! actor photos changed since the served model was trained.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Files under `root`, relative, sorted; hidden entries skipped.
fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// `sha256:<hex>` of the folder's files (or of one file): renaming, adding,
/// removing or editing any photo changes it; file times don't.
pub fn fingerprint(root: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    if root.is_file() {
        hasher.update(fs::read(root)?);
    } else {
        let mut paths = Vec::new();
        files(root, root, &mut paths)?;
        paths.sort();
        for path in paths {
            let content = Sha256::digest(fs::read(root.join(&path))?);
            hasher.update(path.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(content);
        }
    }
    let digest = hasher.finalize();
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_names_and_contents_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("Keanu")).unwrap();
        fs::write(root.join("Keanu/a.jpg"), b"one").unwrap();
        let first = fingerprint(root).unwrap();
        assert!(first.starts_with("sha256:") && first.len() == 71);
        assert_eq!(fingerprint(root).unwrap(), first);
        fs::write(root.join(".DS_Store"), b"noise").unwrap();
        assert_eq!(fingerprint(root).unwrap(), first, "hidden files ignored");
        fs::write(root.join("Keanu/a.jpg"), b"two").unwrap();
        let edited = fingerprint(root).unwrap();
        assert_ne!(edited, first);
        fs::create_dir_all(root.join("Emma")).unwrap();
        fs::rename(root.join("Keanu/a.jpg"), root.join("Emma/a.jpg")).unwrap();
        assert_ne!(
            fingerprint(root).unwrap(),
            edited,
            "a photo moved to another class"
        );
    }
}
