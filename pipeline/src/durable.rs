//! Writes that survive a crash or a power cut: a file flushed to disk
//! before it is renamed into place, and the folder that holds the new name.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes a file and flushes it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Flushes a folder's entries (a rename into it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Puts `bytes` at `path` whole or not at all: written to a hidden file
/// beside it, flushed, renamed into place and the rename flushed; the
/// folders on the way are made. An error names the path it failed on.
pub fn replace_synced(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, io::Error)> {
    fn at(path: &Path) -> impl FnOnce(io::Error) -> (PathBuf, io::Error) + '_ {
        move |e| (path.to_path_buf(), e)
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder).map_err(at(folder))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let hidden = folder.join(format!(".{name}.partial"));
    write_synced(&hidden, bytes).map_err(at(&hidden))?;
    fs::rename(&hidden, path).map_err(at(path))?;
    sync_dir(folder).map_err(at(folder))
}
