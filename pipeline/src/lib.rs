//! Starcast's data pipeline: the records and files that feed the app,
//! evaluation and retraining: the examples gallery, the review queue of
//! flagged predictions, the daily loop's run records, models uploaded by an admin, photo and horoscope
//! collection and processing, the model registry and the model card a
//! version carries to the Hub.

pub mod dataset;
mod durable;
pub mod examples;
pub mod flags;
pub mod horoscopes;
pub mod hub_push;
pub mod model_card;
pub mod photos;
pub mod records;
pub mod registry;
pub mod runs;
pub mod store;
pub mod tracking;
pub mod uploads;

pub use examples::ExamplePhotos;
pub use flags::{FlagError, FlagRecord, FlagStore, NewFlag};
pub use uploads::{ModelUpload, ModelUploads, UploadError, parse_labels};
