//! `POST /api/flags`: store a result a user says is wrong, for review.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::{Extension, Json};
use starcast_api::{ErrorBody, FlagReceipt, Task, UnknownTask};
use starcast_model::photo::photo_extension;
use starcast_pipeline::NewFlag;

use crate::client::ClientAddress;
use crate::error::ApiError;
use crate::metrics::Call;
use crate::state::AppState;

/// The fields of a flag form, as text, and the optional photo.
#[derive(Default, utoipa::ToSchema)]
pub struct FlagForm {
    /// `actors` or `horoscope`.
    #[schema(required = true, example = "horoscope")]
    task: Option<String>,
    /// What was asked, as JSON.
    #[schema(required = true, example = r#"{"sign": "leo"}"#)]
    input: Option<String>,
    /// What the app answered, as JSON.
    #[schema(required = true, example = r#"{"text": "The day is yours."}"#)]
    output: Option<String>,
    /// Why the answer is wrong.
    #[schema(example = "It repeats itself.")]
    reason: Option<String>,
    /// Who is really in the photo: labelled actor flags become an evaluation set.
    label: Option<String>,
    /// The photo, for an actors flag.
    #[schema(value_type = Option<String>, format = Binary)]
    image: Option<Vec<u8>>,
}

async fn read_form(mut form: Multipart, limit_mb: usize) -> Result<FlagForm, ApiError> {
    let mut fields = FlagForm::default();
    let too_big = |e| ApiError::from_multipart(e, limit_mb);
    while let Some(field) = form.next_field().await.map_err(too_big)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "image" {
            fields.image = Some(field.bytes().await.map_err(too_big)?.to_vec());
            continue;
        }
        let slot = match name.as_str() {
            "task" => &mut fields.task,
            "input" => &mut fields.input,
            "output" => &mut fields.output,
            "reason" => &mut fields.reason,
            "label" => &mut fields.label,
            _ => continue,
        };
        *slot = Some(field.text().await.map_err(too_big)?);
    }
    Ok(fields)
}

fn json_field(field: &'static str, text: Option<String>) -> Result<serde_json::Value, ApiError> {
    let text = text.ok_or(ApiError::MissingField(field))?;
    serde_json::from_str(&text).map_err(|e| ApiError::BadField {
        field,
        reason: format!("it must be JSON ({e})"),
    })
}

fn parse_flag(form: FlagForm) -> Result<NewFlag, ApiError> {
    let task: Task = form
        .task
        .ok_or(ApiError::MissingField("task"))?
        .parse()
        .map_err(|e: UnknownTask| ApiError::BadField {
            field: "task",
            reason: e.to_string(),
        })?;
    let attachment = match form.image {
        Some(bytes) => {
            let extension = photo_extension(&bytes).ok_or_else(|| ApiError::BadField {
                field: "image",
                reason: "it is not a photo this app can read".into(),
            })?;
            Some((extension.to_string(), bytes))
        }
        None => None,
    };
    Ok(NewFlag {
        task,
        input: json_field("input", form.input)?,
        output: json_field("output", form.output)?,
        reason: form.reason.unwrap_or_default(),
        label: form.label,
        attachment,
    })
}

/// Flag a result for review.
#[utoipa::path(
    post,
    path = "/api/flags",
    tag = "flags",
    request_body(content = FlagForm, content_type = "multipart/form-data", description = "The flag's fields; `input` and `output` are JSON texts."),
    responses(
        (status = 200, description = "The flag was stored", body = FlagReceipt),
        (status = 413, description = "The upload is over the size limit", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
        (status = 429, description = "Too many flags from this address (see `Retry-After`)", body = ErrorBody),
        (status = 507, description = "The review queue is full", body = ErrorBody),
    )
)]
pub async fn flag(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<FlagReceipt>, ApiError> {
    state.flag_rate.take(client)?;
    let form =
        form.map_err(|_| ApiError::BadForm("send the flag as multipart/form-data".into()))?;
    let flag = parse_flag(read_form(form, state.limits.max_upload_mb).await?)?;
    let result = state.flags.save(flag).await.map_err(ApiError::from);
    state
        .metrics
        .count(Call::Flag, None, super::actors::outcome(&result));
    let record = result?;
    tracing::info!(id = %record.id, task = ?record.task, "result flagged");
    Ok(Json(FlagReceipt { id: record.id }))
}
