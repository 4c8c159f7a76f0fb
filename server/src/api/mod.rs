//! The REST API under `/api`, plus the operational endpoints.

pub mod actors;
pub mod admin;
pub mod browser;
pub mod flags;
pub mod horoscope;
pub mod pipeline;
pub mod reference;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use starcast_api::{
    BrowserFile, BrowserModel, ErrorBody, FlagReceipt, Monitoring, PipelineRun, RunStatus, StepRun,
    Task, Trigger,
};
use starcast_model::{
    ActorReport, Face, Horoscope, HoroscopeQuery, ModelInfo, ModelKind, Prediction, Recognition,
    ZodiacSign,
};
use utoipa::OpenApi;

use crate::state::AppState;
use starcast_jobs::device::device_name;

#[derive(OpenApi)]
#[openapi(
    modifiers(&AdminToken),
    info(
        title = "Starcast API",
        description = "Actor recognition and horoscope generation. Errors are JSON: {\"error\": \"a sentence\"}."
    ),
    paths(
        actors::predict,
        admin::upload_actors_model,
        horoscope::write,
        horoscope::stream,
        flags::flag,
        pipeline::runs,
        pipeline::start,
        pipeline::monitoring,
        models,
        browser::models,
        health
    ),
    components(schemas(
        ActorReport,
        Recognition,
        Prediction,
        Face,
        Horoscope,
        HoroscopeQuery,
        ModelInfo,
        ModelKind,
        ZodiacSign,
        ErrorBody,
        FlagReceipt,
        PipelineRun,
        Monitoring,
        StepRun,
        RunStatus,
        Trigger,
        Task,
        BrowserModel,
        BrowserFile,
        Health,
        actors::PhotoForm,
        flags::FlagForm,
        admin::ModelForm
    ))
)]
pub struct ApiDoc;

/// The bearer token that admin routes require.
struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "admin_token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The API routes; uploads get the configured body limit.
pub fn routes(state: &AppState) -> Router<AppState> {
    let upload_limit = DefaultBodyLimit::max(state.limits.max_upload_bytes());
    Router::new()
        .route(
            "/api/actors/predict",
            post(actors::predict).layer(upload_limit),
        )
        .route("/api/horoscope", post(horoscope::write))
        .route("/api/horoscope/stream", get(horoscope::stream))
        .route("/api/flags", post(flags::flag).layer(upload_limit))
        .route(
            "/api/admin/actors/model",
            post(admin::upload_actors_model).layer(DefaultBodyLimit::max(
                state.limits.max_model_mb * 1024 * 1024,
            )),
        )
        .route("/api/pipeline/runs", get(pipeline::runs))
        .route("/api/admin/pipeline/runs", post(pipeline::start))
        .route("/api/monitoring", get(pipeline::monitoring))
        .route("/api/models", get(models))
        .route("/api/browser/models", get(browser::models))
        .route(
            "/api/browser/files/{key}/{fingerprint}/{*name}",
            get(browser::file),
        )
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
}

/// The served models.
#[utoipa::path(get, path = "/api/models", tag = "models", responses((status = 200, body = Vec<ModelInfo>)))]
async fn models(State(state): State<AppState>) -> Json<Vec<ModelInfo>> {
    Json(state.models.infos())
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    models: usize,
    /// Where the models run: `cpu` or `cuda:N`.
    device: String,
    /// The CPU kernels in use: `avx512`, `avx2` or `portable`.
    kernels: &'static str,
    /// Requests waiting for a turn now: photos to classify, horoscopes to write.
    photos_waiting: usize,
    horoscopes_waiting: usize,
}

/// Readiness: 200 once the models are loaded (503 with status `loading`
/// before), with how many it serves, where, on which CPU kernels, and how
/// many requests wait for a turn.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let loading = state.models.is_loading();
    let status = if loading {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let health = Health {
        status: if loading { "loading" } else { "ok" },
        models: state.models.infos().len(),
        device: device_name(&state.device),
        kernels: starcast_model::kernels::active().name(),
        photos_waiting: state.classify.queued(),
        horoscopes_waiting: state.generate.queued(),
    };
    (status, Json(health))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Some(log) = &state.predictions {
        let served = state.models.actors().map(|model| model.info().clone());
        // The registry's text ends with `# EOF`: the log's metrics go before it.
        let end = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(end, &log.recent_confidence(served.as_ref()).await);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
