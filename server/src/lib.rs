//! The `starcast` server: axum wiring for the Leptos app and the REST API.
//! Thin by design: the models live in `starcast-model`, the data in
//! `starcast-pipeline`.

pub mod api;
pub mod collect;
pub mod dataset;
pub mod device;
pub mod error;
pub mod generate;
pub mod metrics;
pub mod models;
pub mod predict;
pub mod process;
pub mod reload;
pub mod router;
pub mod scheduler;
pub mod serve;
pub mod state;
pub mod step_metrics;
pub mod train;

pub use router::router;
pub use state::{Admin, AppState, Limits};
