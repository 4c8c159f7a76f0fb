//! Starcast's web server: the axum router, the REST API, its errors and
//! metrics, `serve`, and the hot reload of promoted registry versions.
//! Models come from `starcast-model`, records from `starcast-pipeline`;
//! of the jobs, the server reaches only the daily loop it schedules and
//! `--device`. Only `main.rs` dispatches to training and the other jobs.

pub mod admission;
pub mod api;
pub mod batching;
pub mod client;
pub mod connections;
pub mod error;
pub mod export;
pub mod localize;
pub mod metrics;
pub mod model_check;
pub mod prediction_log;
pub mod reload;
pub mod router;
pub mod serve;
pub mod state;

pub use router::router;
pub use state::{Admin, AppState, Limits};
