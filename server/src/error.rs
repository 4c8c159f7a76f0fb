//! The one error type of the HTTP layer: every failure becomes a status and
//! a sentence the user can act on. Server faults are logged and shown only
//! as "something went wrong".

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use starcast_api::ErrorBody;
use starcast_jobs::scheduler::PipelineError;
use starcast_model::photo::PhotoError;
use starcast_model::{InvalidRequest, Language, ModelError, ServedModels};
use starcast_pipeline::{FlagError, UploadError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the upload is larger than the {limit_mb} MB limit: send a smaller file")]
    UploadTooLarge { limit_mb: usize },
    #[error("the upload could not be read as a form: {0}")]
    BadForm(String),
    #[error("the form has no field named '{0}'")]
    MissingField(&'static str),
    #[error("the field '{field}' is not valid: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error(transparent)]
    Request(#[from] InvalidRequest),
    #[error("{0}")]
    BadJson(String),
    #[error("{0}")]
    BadQuery(String),
    #[error("no {0} model is loaded yet, so nothing was guessed: ask the operator to load one")]
    NoModel(&'static str),
    #[error("the {0} model is still loading: try again in a few seconds")]
    Loading(&'static str),
    #[error("no horoscope model here writes {language} ({code}): ask for {served}", language = language_name(*.language), code = .language.code(), served = served_sentence(.served))]
    NoModelInLanguage {
        language: Language,
        served: Vec<Language>,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "admin actions (model uploads, pipeline runs) are off: the operator can turn them on with STARCAST_ADMIN_TOKEN"
    )]
    AdminOff,
    #[error("this needs the admin token: send it as 'Authorization: Bearer <token>'")]
    Unauthorized,
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("the uploaded model can't be served, and the served one was kept: {0}")]
    BadModel(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("this server has no pipeline configured")]
    NoPipeline,
    #[error("the server is busy with other {what} requests: try again in {retry_after} seconds")]
    Busy {
        what: &'static str,
        retry_after: u64,
    },
    #[error(
        "this address already has {cap} horoscope streams open: close one, or wait for it to finish, and try again"
    )]
    TooManyStreams { cap: usize },
    #[error("too many {what} from this address: try again in {retry_after} seconds")]
    RateLimited {
        what: &'static str,
        retry_after: u64,
    },
    #[error(
        "no served model has this file: the model may have changed since the page listed it, so reload the page"
    )]
    NoSuchModelFile,
    /// Work skipped because nobody waits for its answer any more.
    #[error("the request was abandoned before its work started")]
    Abandoned,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadForm(_) | ApiError::BadJson(_) | ApiError::BadQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Photo(PhotoError::Empty | PhotoError::NotAnImage) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::MissingField(_)
            | ApiError::BadField { .. }
            | ApiError::Photo(_)
            | ApiError::Request(_)
            | ApiError::Flag(
                FlagError::ReasonTooLong(_)
                | FlagError::BadExtension(_)
                | FlagError::BadLabel
                | FlagError::FieldTooLarge { .. }
                | FlagError::FieldTooDeep { .. },
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Flag(FlagError::Full { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Upload(UploadError::BadFileName(_) | UploadError::Empty)
            | ApiError::BadModel(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::AdminOff => StatusCode::FORBIDDEN,
            ApiError::TooManyStreams { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NoSuchModelFile => StatusCode::NOT_FOUND,
            ApiError::NoModel(_)
            | ApiError::NoModelInLanguage { .. }
            | ApiError::Loading(_)
            | ApiError::NoPipeline
            | ApiError::Busy { .. }
            | ApiError::Abandoned => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Pipeline(PipelineError::AlreadyRunning) => StatusCode::CONFLICT,
            ApiError::Model(_)
            | ApiError::Flag(_)
            | ApiError::Task(_)
            | ApiError::Upload(_)
            | ApiError::Pipeline(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error as a sentence for the user.
    pub fn sentence(&self) -> String {
        sentence(&self.to_string())
    }

    /// Maps a multipart error: a body over the limit is the user's to fix.
    pub fn from_multipart(error: MultipartError, limit_mb: usize) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::UploadTooLarge { limit_mb }
        } else {
            ApiError::BadForm(error.body_text())
        }
    }
}

/// Capitalises the first letter: messages are lowercase inside error chains
/// and sentences on their own.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => {
            let mut s: String = first.to_uppercase().chain(chars).collect();
            if !s.ends_with('.') {
                s.push('.');
            }
            s
        }
        None => String::new(),
    }
}

fn language_name(language: Language) -> &'static str {
    match language {
        Language::En => "English",
        Language::Ru => "Russian",
    }
}

/// "lang=en" or "lang=en or lang=ru".
fn served_sentence(served: &[Language]) -> String {
    let codes: Vec<&str> = served.iter().map(|l| l.code()).collect();
    format!("lang={}", codes.join(" or lang="))
}

/// Seconds to wait before asking again while the models load.
const LOADING_RETRY_AFTER: u64 = 2;

impl ApiError {
    /// The answer when `models` has no model for `what`: it may still be loading.
    /// The answer when no served horoscope model writes `language`.
    pub fn no_horoscope_in(models: &ServedModels, language: Language) -> Self {
        if models.is_loading() {
            return ApiError::Loading("horoscope");
        }
        let served = models.horoscope_languages();
        if served.is_empty() {
            return ApiError::NoModel("horoscope");
        }
        ApiError::NoModelInLanguage { language, served }
    }

    pub fn missing(models: &ServedModels, what: &'static str) -> Self {
        if models.is_loading() {
            ApiError::Loading(what)
        } else {
            ApiError::NoModel(what)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A fault of the server's own is logged and not described; a 503
        // (busy, loading) or 507 (the review queue is full) says what to do.
        let error = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "Something went wrong on the server; the error was logged. Try again later.".to_string()
        } else {
            self.sentence()
        };
        let mut response = (status, Json(ErrorBody { error })).into_response();
        response.extensions_mut().insert(self.message());
        let retry_after = match self {
            ApiError::Busy { retry_after, .. } | ApiError::RateLimited { retry_after, .. } => {
                Some(retry_after)
            }
            ApiError::Loading(_) => Some(LOADING_RETRY_AFTER),
            _ => None,
        };
        if let Some(retry_after) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadJson(format!(
            "the JSON body could not be read: {}",
            rejection.body_text()
        ))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadQuery(format!(
            "the query string could not be read: {}",
            rejection.body_text()
        ))
    }
}

/// `Json` whose rejections are API errors with sentences.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query` whose rejections are API errors with sentences.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("the file is empty"), "The file is empty.");
        assert_eq!(sentence("done."), "Done.");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn a_missing_model_is_unavailable_not_a_crash() {
        let error = ApiError::NoModel("actor recognition");
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.to_string().contains("actor recognition"), "{error}");
    }
}
