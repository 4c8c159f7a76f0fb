//! Starcast's training side. Its first piece is the dataset reader: the
//! class order it records is what the served model's labels come from, so
//! nobody types a `labels` list by hand again.

pub mod image_folder;

pub use image_folder::{ImageFolder, ImageFolderError};
