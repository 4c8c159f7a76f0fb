//! `POST /api/admin/actors/model`: an admin replaces the served actor model
//! with an uploaded one, at once and without a restart.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, header};
use axum::{Extension, Json};
use starcast_api::ErrorBody;
use starcast_model::vision::ClassifierOptions;
use starcast_model::{ModelInfo, load_actor_recognizer};
use starcast_pipeline::{ModelUpload, parse_labels};

use crate::client::ClientAddress;
use crate::error::ApiError;
use crate::state::{Admin, AppState};

/// The server's admin, when the request carries the admin token. A client
/// that sent too many wrong tokens lately is refused before its next one is
/// even looked at.
pub fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddress,
) -> Result<Admin, ApiError> {
    let admin = state.admin.clone().ok_or(ApiError::AdminOff)?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorization.is_some() {
        state.admin_failures.check(client)?;
    }
    if !admin.allows(authorization) {
        if authorization.is_some() {
            state.admin_failures.take(client)?;
        }
        return Err(ApiError::Unauthorized);
    }
    Ok(admin)
}

/// The form `POST /api/admin/actors/model` takes, for the API's
/// description: the handler reads the fields itself, so as to bound them.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "only its schema is used")]
pub struct ModelForm {
    /// The model file: .pth in any form torch.save writes, .pt, .bin or .safetensors.
    #[schema(value_type = String, format = Binary, example = "model.pth")]
    weights: Vec<u8>,
    /// Class labels in order, one per line or comma-separated.
    #[schema(example = "Ada,Bea,Cleo")]
    labels: Option<String>,
    /// resnet18, mobilenet_v2, ... when the tensor names don't tell.
    architecture: Option<String>,
}

/// Upload a classifier and serve it.
#[utoipa::path(
    post,
    path = "/api/admin/actors/model",
    tag = "admin",
    request_body(content = ModelForm, content_type = "multipart/form-data", description = "The model and what its file may not tell."),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The model now served", body = ModelInfo),
        (status = 401, description = "The admin token is missing or wrong", body = ErrorBody),
        (status = 403, description = "Uploads are off on this server", body = ErrorBody),
        (status = 413, description = "The upload is over the model size limit", body = ErrorBody),
        (status = 422, description = "The file is not a model that can be served; the served model is kept", body = ErrorBody),
    )
)]
pub async fn upload_actors_model(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<ModelInfo>, ApiError> {
    let admin = require_admin(&state, &headers, client)?;
    let mut form = form.map_err(|_| {
        ApiError::BadForm(
            "send the model as multipart/form-data with a field named 'weights'".into(),
        )
    })?;
    let upload = read_upload(&mut form, state.limits.max_model_mb).await?;
    // Checking and loading a model is CPU work like a classification.
    let _turn = state.classify.turn().await?;
    let uploads = admin.uploads.clone();
    let folder = {
        let uploads = uploads.clone();
        tokio::task::spawn_blocking(move || uploads.save(&upload)).await??
    };
    if let Some(checker) = &admin.checker
        && let Err(failed) = checker.check(&folder).await
    {
        uploads.discard(&folder);
        return Err(ApiError::BadModel(failed.to_string()));
    }
    let device = state.device.clone();
    let model = tokio::task::spawn_blocking(move || {
        load_actor_recognizer(&folder, &ClassifierOptions::on(device)).map_err(|error| {
            uploads.discard(&folder);
            ApiError::BadModel(error.to_string())
        })
    })
    .await??;
    state.models.serve_actors(model.clone());
    let info = model.info().clone();
    tracing::info!(model = %info.name, version = %info.version, architecture = %info.architecture, "an admin upload is now served");
    Ok(Json(info))
}

async fn read_upload(form: &mut Multipart, limit_mb: usize) -> Result<ModelUpload, ApiError> {
    let too_large = |e| ApiError::from_multipart(e, limit_mb);
    let mut weights = None;
    let mut labels = Vec::new();
    let mut architecture = None;
    while let Some(field) = form.next_field().await.map_err(too_large)? {
        match field.name() {
            Some("weights") => {
                let file_name = field.file_name().unwrap_or("model.pth").to_string();
                weights = Some((file_name, field.bytes().await.map_err(too_large)?.to_vec()));
            }
            Some("labels") => labels = parse_labels(&field.text().await.map_err(too_large)?),
            Some("architecture") => {
                let text = field.text().await.map_err(too_large)?;
                architecture = Some(text.trim().to_string()).filter(|a| !a.is_empty());
            }
            _ => {}
        }
    }
    let (file_name, weights) = weights.ok_or(ApiError::MissingField("weights"))?;
    Ok(ModelUpload {
        file_name,
        weights,
        labels,
        architecture,
    })
}
