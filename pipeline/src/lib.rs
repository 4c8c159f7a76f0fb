//! Starcast's data pipeline: the records and files that feed the app,
//! evaluation and retraining. Today: the examples gallery, the review
//! queue of flagged predictions, models uploaded by an admin, and the
//! processing of collected horoscopes.

pub mod dataset;
pub mod examples;
pub mod flags;
pub mod horoscopes;
pub mod photos;
pub mod store;
pub mod uploads;

pub use examples::ExamplePhotos;
pub use flags::{FlagError, FlagRecord, FlagStore, FlaggedTask, NewFlag};
pub use uploads::{ModelUpload, ModelUploads, UploadError, parse_labels};
