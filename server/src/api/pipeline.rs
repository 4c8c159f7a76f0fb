//! The daily loop over HTTP: its recorded runs, a run started by an admin,
//! and the served model's recent answers it watches.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use starcast_api::{ErrorBody, Monitoring, PipelineRun, Trigger};
use starcast_jobs::scheduler::LISTED_RUNS;

use super::admin::require_admin;
use crate::client::ClientAddress;
use crate::error::ApiError;
use crate::state::AppState;

/// The latest pipeline runs, newest first. Each step's command and output
/// (paths, logs) only with the admin token; everyone sees names, status
/// and figures.
#[utoipa::path(
    get,
    path = "/api/pipeline/runs",
    tag = "pipeline",
    responses((status = 200, description = "Up to 20 runs, newest first", body = Vec<PipelineRun>))
)]
pub async fn runs(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    headers: HeaderMap,
) -> Json<Vec<PipelineRun>> {
    let admin = require_admin(&state, &headers, client).is_ok();
    let Some(pipeline) = state.pipeline else {
        return Json(Vec::new());
    };
    let mut runs = pipeline.history(LISTED_RUNS).await;
    if !admin {
        for step in runs.iter_mut().flat_map(|run| run.steps.iter_mut()) {
            step.command.clear();
            step.log.clear();
        }
    }
    Json(runs)
}

/// Start a pipeline run now; it goes on in the background.
#[utoipa::path(
    post,
    path = "/api/admin/pipeline/runs",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "The run, as it starts", body = PipelineRun),
        (status = 401, description = "The admin token is missing or wrong", body = ErrorBody),
        (status = 403, description = "Admin actions are off on this server", body = ErrorBody),
        (status = 409, description = "A run is already going", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<PipelineRun>), ApiError> {
    require_admin(&state, &headers, client)?;
    let pipeline = state.pipeline.ok_or(ApiError::NoPipeline)?;
    let run = pipeline.start(Trigger::Admin).await?;
    tracing::info!(id = %run.id, "an admin started a pipeline run");
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// How sure the served actor model has been over the last hour: its answers
/// per tenth of confidence, from the prediction log every replica writes.
#[utoipa::path(
    get,
    path = "/api/monitoring",
    tag = "pipeline",
    responses((status = 200, description = "The served actor model's last hour", body = Monitoring))
)]
pub async fn monitoring(State(state): State<AppState>) -> Json<Monitoring> {
    let served = state.models.actors().map(|model| model.info().clone());
    Json(match &state.predictions {
        Some(log) => log.monitoring(served.as_ref()).await,
        None => Monitoring {
            model: served.map(|model| format!("{}@{}", model.name, model.version)),
            ..Monitoring::default()
        },
    })
}
