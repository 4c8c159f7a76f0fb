//! Writes that survive a crash or a power cut: a file flushed to disk
//! before it is renamed into place, and the folder that holds the new name.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

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
