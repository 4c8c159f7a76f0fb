//! `POST /api/actors/predict`: who is in an uploaded photo.

use std::time::Instant;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use starcast_api::{ErrorBody, Task};
use starcast_model::ActorReport;
use starcast_model::photo::check_photo_header;

use crate::admission::Abandon;
use crate::error::ApiError;
use crate::metrics::Call;
use crate::state::AppState;

/// Reads the bytes of the multipart field `name`, or `None` when absent.
pub async fn read_field(
    form: &mut Multipart,
    name: &'static str,
    limit_mb: usize,
) -> Result<Option<Vec<u8>>, ApiError> {
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::from_multipart(e, limit_mb))?
    {
        if field.name() == Some(name) {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ApiError::from_multipart(e, limit_mb))?;
            return Ok(Some(bytes.to_vec()));
        }
    }
    Ok(None)
}

pub fn multipart_expected(_: MultipartRejection) -> ApiError {
    ApiError::BadForm("send the photo as multipart/form-data with a field named 'image'".into())
}

/// The form `POST /api/actors/predict` takes, for the API's description:
/// the handler reads the field itself, so as to bound it.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "only its schema is used")]
pub struct PhotoForm {
    /// The photo: JPEG, PNG, WebP, GIF or BMP.
    #[schema(value_type = String, format = Binary, example = "photo.jpg")]
    image: Vec<u8>,
}

/// Recognise the actors in a photo.
#[utoipa::path(
    post,
    path = "/api/actors/predict",
    tag = "actors",
    request_body(content = PhotoForm, content_type = "multipart/form-data", description = "A form with the photo in the field `image`."),
    responses(
        (status = 200, description = "Labels for the photo, highest first, and one entry per face when the model finds faces", body = ActorReport),
        (status = 413, description = "The upload is over the size limit", body = ErrorBody),
        (status = 415, description = "The file is empty or not an image", body = ErrorBody),
        (status = 422, description = "The image is damaged, too large in pixels, or the field is missing", body = ErrorBody),
        (status = 503, description = "No actor model is loaded, or the server is busy (see `Retry-After`)", body = ErrorBody),
    )
)]
pub async fn predict(
    State(state): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<ActorReport>, ApiError> {
    let _arriving = state.photos.arriving();
    let mut form = form.map_err(multipart_expected)?;
    let limit_mb = state.limits.max_upload_mb;
    let bytes = read_field(&mut form, "image", limit_mb)
        .await?
        .ok_or(ApiError::MissingField("image"))?;
    let recognizer = state.models.actors();
    let model = recognizer.as_ref().map(|r| r.info().clone());
    let (abandon, _abandon_on_drop) = Abandon::within(state.limits.request_timeout);
    let result = match recognizer {
        Some(recognizer) => {
            let turn = state.classify.turn().await?;
            let started = Instant::now();
            let result = state
                .photos
                .recognize(recognizer, bytes, abandon, turn)
                .await;
            if result.is_ok() {
                state.classify.record(started.elapsed());
            }
            result
        }
        // A file that is no photo is told so, model or not.
        None => check_photo_header(&bytes, state.limits.max_photo_pixels)
            .map_err(ApiError::from)
            .and_then(|()| Err(ApiError::missing(&state.models, "actor recognition"))),
    };
    state
        .metrics
        .count(Call::Model(Task::Actors), model.as_ref(), outcome(&result));
    if let (Ok(report), Some(model)) = (&result, &model) {
        let top = report.recognition.predictions.first();
        state.metrics.observe(
            Task::Actors,
            model,
            report.elapsed_ms / 1000.0,
            top.map(|p| p.score),
        );
        if let (Some(log), Some(top)) = (&state.predictions, top) {
            log.log(model, &top.label, top.score, report.elapsed_ms);
        }
    }
    result.map(Json)
}

/// A short label of a request's outcome for the metrics.
pub fn outcome<T>(result: &Result<T, ApiError>) -> &'static str {
    result.as_ref().err().map_or("ok", failure_kind)
}

pub fn failure_kind(error: &ApiError) -> &'static str {
    match error {
        ApiError::NoModel(_) | ApiError::Loading(_) => "no_model",
        e if e.status().is_client_error() => "bad_input",
        _ => "error",
    }
}
