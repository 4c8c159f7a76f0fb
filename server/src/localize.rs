//! API error sentences in the request's language. An error answer carries
//! its words as a Fluent message ([`ErrorMessage`], from
//! `app/locales/<lang>/errors.ftl`); [`errors`] renders it in the language
//! the request asks for (the language switch's cookie, else
//! `Accept-Language`). English answers keep the errors' own sentences,
//! which the logs and the command line share.

use axum::Json;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use starcast_api::ErrorBody;
use starcast_app::{FluentValue, from_cookies, try_text_with};
use starcast_jobs::scheduler::PipelineError;
use starcast_model::horoscope::MAX_TEMPERATURE;
use starcast_model::photo::{MAX_SIDE, PhotoError};
use starcast_model::{InvalidRequest, Language};
use starcast_pipeline::{FlagError, UploadError};

use crate::error::ApiError;

/// One argument of an error's message.
#[derive(Clone, Debug, PartialEq)]
pub enum Argument {
    Text(String),
    Number(f64),
}

/// An error answer's words: a Fluent message id and its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorMessage {
    pub id: &'static str,
    pub arguments: Vec<(&'static str, Argument)>,
}

impl ErrorMessage {
    fn new(id: &'static str) -> Self {
        ErrorMessage {
            id,
            arguments: Vec::new(),
        }
    }

    /// A name the words choose by (`actor recognition`): Fluent's variant
    /// keys are identifiers, so it goes as `actor-recognition`.
    fn kind(self, name: &'static str, value: &str) -> Self {
        self.text(name, value.replace(' ', "-"))
    }

    fn text(mut self, name: &'static str, value: impl ToString) -> Self {
        self.arguments
            .push((name, Argument::Text(value.to_string())));
        self
    }

    fn number(mut self, name: &'static str, value: impl Into<f64>) -> Self {
        self.arguments.push((name, Argument::Number(value.into())));
        self
    }

    /// The message in `language`, when the locale files have it.
    pub fn render(&self, language: Language) -> Option<String> {
        let arguments: Vec<(&str, FluentValue)> = self
            .arguments
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Argument::Text(text) => FluentValue::from(text.clone()),
                    Argument::Number(number) => FluentValue::from(*number),
                };
                (*name, value)
            })
            .collect();
        try_text_with(language, self.id, &arguments)
    }
}

impl ApiError {
    /// The words a user is shown for this error; a server fault is only
    /// "something went wrong".
    pub fn message(&self) -> ErrorMessage {
        let m = ErrorMessage::new;
        match self {
            ApiError::UploadTooLarge { limit_mb } => {
                m("error-upload-too-large").number("limit", *limit_mb as f64)
            }
            ApiError::BadForm(reason) => m("error-bad-form").text("reason", reason),
            ApiError::MissingField(field) => m("error-missing-field").text("field", field),
            ApiError::BadField { field, reason } => m("error-bad-field")
                .text("field", field)
                .text("reason", reason),
            ApiError::Photo(error) => photo_message(error),
            ApiError::Request(error) => request_message(error),
            ApiError::BadJson(reason) => m("error-bad-json").text("reason", reason),
            ApiError::BadQuery(reason) => m("error-bad-query").text("reason", reason),
            ApiError::NoModel(what) => m("error-no-model").kind("what", what),
            ApiError::Loading(what) => m("error-loading").kind("what", what),
            ApiError::NoModelInLanguage { language, served } => m("error-no-model-in-language")
                .text("language", language.code())
                .text(
                    "served",
                    served
                        .iter()
                        .map(|l| format!("lang={}", l.code()))
                        .collect::<Vec<_>>()
                        .join(" / "),
                ),
            ApiError::Flag(error) => flag_message(error),
            ApiError::AdminOff => m("error-admin-off"),
            ApiError::Unauthorized => m("error-unauthorized"),
            ApiError::Upload(UploadError::BadFileName(name)) => {
                m("error-upload-file-name").text("name", name)
            }
            ApiError::Upload(UploadError::Empty) => m("error-upload-empty"),
            ApiError::BadModel(reason) => m("error-bad-model").text("reason", reason),
            ApiError::Pipeline(PipelineError::AlreadyRunning) => m("error-pipeline-running"),
            ApiError::NoPipeline => m("error-no-pipeline"),
            ApiError::Busy { what, retry_after } => m("error-busy")
                .kind("what", what)
                .number("seconds", *retry_after as f64),
            ApiError::TooManyStreams { cap } => {
                m("error-too-many-streams").number("cap", *cap as f64)
            }
            ApiError::RateLimited { what, retry_after } => m("error-rate-limited")
                .kind("what", what)
                .number("seconds", *retry_after as f64),
            ApiError::NoSuchModelFile => m("error-no-such-model-file"),
            ApiError::Abandoned => m("error-abandoned"),
            ApiError::Model(_)
            | ApiError::Task(_)
            | ApiError::Upload(_)
            | ApiError::Pipeline(_) => m("error-internal"),
        }
    }
}

fn photo_message(error: &PhotoError) -> ErrorMessage {
    let m = ErrorMessage::new;
    match error {
        PhotoError::Empty => m("error-photo-empty"),
        PhotoError::NotAnImage => m("error-photo-not-an-image"),
        PhotoError::TooLarge { width, height } => m("error-photo-too-large")
            .number("width", *width)
            .number("height", *height)
            .number("side", MAX_SIDE),
        PhotoError::TooManyPixels {
            width,
            height,
            max_pixels,
        } => m("error-photo-too-many-pixels")
            .number("width", *width)
            .number("height", *height)
            .number("limit", (*max_pixels as f64 / 1e6).round()),
        PhotoError::Damaged { format, reason } => m("error-photo-damaged")
            .text("format", format)
            .text("reason", reason),
    }
}

fn request_message(error: &InvalidRequest) -> ErrorMessage {
    let m = ErrorMessage::new;
    match error {
        InvalidRequest::Sign(unknown) => m("error-unknown-sign").text("given", &unknown.given),
        InvalidRequest::Date(given) => m("error-bad-date").text("given", given),
        InvalidRequest::Temperature(value) => m("error-bad-temperature")
            .number("value", *value)
            .number("max", MAX_TEMPERATURE),
        InvalidRequest::TopP(value) => m("error-bad-top-p").number("value", *value),
        InvalidRequest::Language(unknown) => {
            m("error-unknown-language").text("given", &unknown.given)
        }
    }
}

fn flag_message(error: &FlagError) -> ErrorMessage {
    use starcast_pipeline::flags::{
        MAX_FIELD_BYTES, MAX_FIELD_DEPTH, MAX_LABEL_BYTES, MAX_REASON_CHARS,
    };
    let m = ErrorMessage::new;
    match error {
        FlagError::ReasonTooLong(chars) => m("error-flag-reason-too-long")
            .number("chars", *chars as f64)
            .number("max", MAX_REASON_CHARS as f64),
        FlagError::BadExtension(extension) => {
            m("error-flag-bad-extension").text("extension", extension)
        }
        FlagError::BadLabel => m("error-flag-bad-label").number("max", MAX_LABEL_BYTES as f64),
        FlagError::FieldTooLarge { field, bytes } => m("error-flag-field-too-large")
            .text("field", field)
            .number("bytes", *bytes as f64)
            .number("max", MAX_FIELD_BYTES as f64),
        FlagError::FieldTooDeep { field } => m("error-flag-field-too-deep")
            .text("field", field)
            .number("max", MAX_FIELD_DEPTH as f64),
        FlagError::Full { flags, .. } => m("error-flag-queue-full").number("flags", *flags as f64),
        _ => m("error-internal"),
    }
}

/// The language a request asks answers in: the language switch's cookie,
/// else `Accept-Language`, else English.
fn request_language(request: &Request) -> Language {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    from_cookies(header(header::COOKIE))
        .or_else(|| Language::from_accept_language(header(header::ACCEPT_LANGUAGE)))
        .unwrap_or_default()
}

/// Renders an error answer's message in the request's language.
pub async fn errors(request: Request, next: Next) -> Response {
    let language = request_language(&request);
    let response = next.run(request).await;
    if language == Language::En {
        return response;
    }
    let Some(text) = response
        .extensions()
        .get::<ErrorMessage>()
        .and_then(|message| message.render(language))
    else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = Json(ErrorBody { error: text }).into_response().into_body();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each kind a user can be shown.
    fn every_user_error() -> Vec<ApiError> {
        vec![
            ApiError::UploadTooLarge { limit_mb: 10 },
            ApiError::BadForm("no boundary".into()),
            ApiError::MissingField("task"),
            ApiError::BadField {
                field: "input",
                reason: "it must be JSON".into(),
            },
            ApiError::Photo(PhotoError::Empty),
            ApiError::Photo(PhotoError::NotAnImage),
            ApiError::Photo(PhotoError::TooLarge {
                width: 20_000,
                height: 10,
            }),
            ApiError::Photo(PhotoError::TooManyPixels {
                width: 12_000,
                height: 12_000,
                max_pixels: 40_000_000,
            }),
            ApiError::Photo(PhotoError::Damaged {
                format: "PNG".into(),
                reason: "crc".into(),
            }),
            ApiError::Request(InvalidRequest::Date("tomorrow".into())),
            ApiError::Request(InvalidRequest::Temperature(9.0)),
            ApiError::Request(InvalidRequest::TopP(2.0)),
            ApiError::Request(InvalidRequest::Sign(starcast_model::UnknownSign {
                given: "Dragon".into(),
            })),
            ApiError::Request(InvalidRequest::Language(starcast_model::UnknownLanguage {
                given: "fr".into(),
            })),
            ApiError::BadJson("eof".into()),
            ApiError::BadQuery("sign".into()),
            ApiError::NoModel("actor recognition"),
            ApiError::Loading("horoscope"),
            ApiError::NoModelInLanguage {
                language: Language::Ru,
                served: vec![Language::En],
            },
            ApiError::Flag(FlagError::ReasonTooLong(3_000)),
            ApiError::Flag(FlagError::BadExtension("x/y".into())),
            ApiError::Flag(FlagError::BadLabel),
            ApiError::Flag(FlagError::FieldTooLarge {
                field: "input",
                bytes: 100_000,
            }),
            ApiError::Flag(FlagError::FieldTooDeep { field: "output" }),
            ApiError::Flag(FlagError::Full {
                flags: 10_000,
                bytes: 1,
            }),
            ApiError::AdminOff,
            ApiError::Unauthorized,
            ApiError::Upload(UploadError::BadFileName("notes.txt".into())),
            ApiError::Upload(UploadError::Empty),
            ApiError::BadModel("no weights".into()),
            ApiError::Pipeline(PipelineError::AlreadyRunning),
            ApiError::NoPipeline,
            ApiError::Busy {
                what: "photo",
                retry_after: 3,
            },
            ApiError::TooManyStreams { cap: 4 },
            ApiError::RateLimited {
                what: "wrong admin tokens",
                retry_after: 60,
            },
            ApiError::NoSuchModelFile,
            ApiError::Abandoned,
        ]
    }

    #[test]
    fn every_error_a_user_sees_has_russian_words() {
        for error in every_user_error() {
            let message = error.message();
            let text = message
                .render(Language::Ru)
                .unwrap_or_else(|| panic!("no Russian for {error:?} ({})", message.id));
            assert!(
                text.chars().any(|c| ('а'..='я').contains(&c)),
                "{error:?}: {text}"
            );
            assert!(
                !text.contains('{') && !text.contains('$'),
                "{error:?}: {text}"
            );
            assert!(text.ends_with('.'), "{error:?}: {text}");
        }
    }

    #[test]
    fn the_words_carry_the_errors_figures_and_names() {
        let text = |error: ApiError| error.message().render(Language::Ru).unwrap();
        assert_eq!(
            text(ApiError::UploadTooLarge { limit_mb: 10 }),
            "Файл больше предела в 10 МБ: отправьте файл поменьше."
        );
        assert!(text(ApiError::NoModel("horoscope")).starts_with("Модель гороскопов"));
        let busy = text(ApiError::Busy {
            what: "photo",
            retry_after: 3,
        });
        assert!(
            busy.contains("запросами фотографий") && busy.contains("через 3 с"),
            "{busy}"
        );
        let pixels = text(ApiError::Photo(PhotoError::TooManyPixels {
            width: 12_000,
            height: 12_000,
            max_pixels: 40_000_000,
        }));
        assert!(
            pixels.contains("12000x12000") && pixels.contains("40 мегапикселей"),
            "{pixels}"
        );
    }
}
