//! Starcast's data pipeline: the records and files that feed the app,
//! evaluation and retraining. Today: the examples gallery and the review
//! queue of flagged predictions.

pub mod examples;
pub mod flags;

pub use examples::ExamplePhotos;
pub use flags::{FlagError, FlagRecord, FlagStore, FlaggedTask, NewFlag};
