//! Horoscope generation: what a user asks for, how it is checked, what comes
//! back, and the interface the text core implements.

use std::ops::ControlFlow;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::language::{Language, UnknownLanguage};
use crate::zodiac::{UnknownSign, ZodiacSign};
use crate::{ModelError, ModelInfo};

/// The seed project's sampling settings.
pub const DEFAULT_TEMPERATURE: f32 = 0.6;
pub const DEFAULT_TOP_P: f32 = 0.7;
pub const MAX_TEMPERATURE: f32 = 2.0;

/// A request as it arrives from a form, a query string or JSON: every field
/// a string or an option, so that each mistake gets its own sentence.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HoroscopeQuery {
    /// English or Russian name, any case, or the glyph.
    #[cfg_attr(feature = "openapi", schema(example = "leo"))]
    pub sign: String,
    /// YYYY-MM-DD; today when absent.
    #[serde(default)]
    pub date: Option<String>,
    /// Above 0, at most 2; 0.6 when absent.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Above 0, at most 1; 0.7 when absent.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Absent: the day's horoscope, the same for everyone.
    #[serde(default)]
    pub seed: Option<u64>,
    /// `en` or `ru`; without it, the language the sign is written in.
    #[serde(default)]
    pub lang: Option<String>,
}

/// A checked request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoroscopeRequest {
    pub sign: ZodiacSign,
    pub date: NaiveDate,
    pub temperature: f32,
    pub top_p: f32,
    /// `None` means the day's horoscope: the writer derives the seed from
    /// the sign, the date and the model version.
    pub seed: Option<u64>,
    pub language: Language,
}

/// Why a request can't be served.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidRequest {
    #[error(transparent)]
    Sign(#[from] UnknownSign),
    #[error("the date '{0}' is not a date: write it as YYYY-MM-DD, e.g. 2026-03-21")]
    Date(String),
    #[error(
        "the temperature {0} is out of range: use a value above 0 and at most {MAX_TEMPERATURE}"
    )]
    Temperature(f32),
    #[error("the top_p value {0} is out of range: use a value above 0 and at most 1")]
    TopP(f32),
    #[error(transparent)]
    Language(#[from] UnknownLanguage),
}

impl HoroscopeQuery {
    /// Checks every field; a missing date means `today`.
    pub fn validate(self, today: NaiveDate) -> Result<HoroscopeRequest, InvalidRequest> {
        let sign = self.sign.parse::<ZodiacSign>()?;
        let language = match self.lang.as_deref().map(str::trim) {
            None | Some("") => Language::of_text(&self.sign),
            Some(code) => code.parse()?,
        };
        let date = match self.date.as_deref().map(str::trim) {
            None | Some("") => today,
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| InvalidRequest::Date(text.to_string()))?,
        };
        let temperature = self.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        if !(temperature > 0.0 && temperature <= MAX_TEMPERATURE) {
            return Err(InvalidRequest::Temperature(temperature));
        }
        let top_p = self.top_p.unwrap_or(DEFAULT_TOP_P);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(InvalidRequest::TopP(top_p));
        }
        Ok(HoroscopeRequest {
            sign,
            date,
            temperature,
            top_p,
            seed: self.seed,
            language,
        })
    }
}

/// A finished horoscope, as the API and the CLI report it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Horoscope {
    pub sign: ZodiacSign,
    pub date: NaiveDate,
    pub text: String,
    /// The model name and version that wrote it.
    pub model: String,
    pub tokens: usize,
    pub tokens_per_s: f64,
}

/// How likely a model finds a text: what perplexity is computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextScore {
    /// The text's tokens.
    pub tokens: usize,
    /// The sum of their negative log-probabilities (natural log).
    pub negative_log_likelihood: f64,
}

/// What a writer streams while it works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streamed<'a> {
    /// The next piece of text.
    Text(&'a str),
    /// The text so far was unusable and is dropped: a new sample starts.
    Restart,
}

/// A model that writes horoscopes. `write` is CPU-bound and calls
/// `on_token` with each piece of text as it is generated; returning
/// `ControlFlow::Break` stops generation (the reader went away).
pub trait HoroscopeWriter: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// Where the model's folder is on disk, for a browser to fetch and run
    /// it itself; `None` for a model built in memory.
    fn location(&self) -> Option<&std::path::Path> {
        None
    }

    fn write(
        &self,
        request: &HoroscopeRequest,
        on_token: &mut dyn FnMut(Streamed) -> ControlFlow<()>,
    ) -> Result<Horoscope, ModelError>;

    /// How likely the model finds `text` as its answer to the horoscope
    /// prompt for `sign` and `date` (the format training uses).
    fn score(
        &self,
        sign: ZodiacSign,
        date: NaiveDate,
        text: &str,
    ) -> Result<TextScore, ModelError> {
        let _ = (sign, date, text);
        Err(ModelError::new(
            self.info().name.clone(),
            "this model can't score a text",
        ))
    }
}

/// Punctuation a horoscope keeps besides letters, ASCII digits and spaces:
/// the seed project's set plus typographic quotes and dashes.
pub const KEPT_PUNCTUATION: &str = "!.,:?;«»-—'’\"“”()";

/// Whether a character belongs in a horoscope's text (letters of any
/// alphabet, ASCII digits, spaces and [`KEPT_PUNCTUATION`]); the text core
/// and the data pipeline clean with the same rule.
pub fn is_kept_char(c: char) -> bool {
    c.is_alphabetic() || c.is_ascii_digit() || c == ' ' || KEPT_PUNCTUATION.contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn query(sign: &str) -> HoroscopeQuery {
        HoroscopeQuery {
            sign: sign.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_the_seed_settings_and_today() {
        let request = query("Leo").validate(today()).unwrap();
        assert_eq!(request.sign, ZodiacSign::Leo);
        assert_eq!(request.date, today());
        assert_eq!(request.temperature, DEFAULT_TEMPERATURE);
        assert_eq!(request.top_p, DEFAULT_TOP_P);
        assert_eq!(request.seed, None);
        assert_eq!(request.language, Language::En);
    }

    #[test]
    fn the_language_is_asked_or_follows_the_sign() {
        let russian = query("Лев").validate(today()).unwrap();
        assert_eq!(
            (russian.sign, russian.language),
            (ZodiacSign::Leo, Language::Ru)
        );
        let asked = HoroscopeQuery {
            lang: Some("ru".into()),
            ..query("leo")
        };
        assert_eq!(asked.validate(today()).unwrap().language, Language::Ru);
        let unknown = HoroscopeQuery {
            lang: Some("fr".into()),
            ..query("leo")
        };
        assert!(matches!(
            unknown.validate(today()),
            Err(InvalidRequest::Language(_))
        ));
    }

    #[test]
    fn each_mistake_gets_its_own_sentence() {
        let unknown = query("dragon").validate(today()).unwrap_err();
        assert!(unknown.to_string().contains("aries, taurus"), "{unknown}");

        let date = HoroscopeQuery {
            date: Some("22.11.2026".into()),
            ..query("leo")
        };
        assert_eq!(
            date.validate(today()),
            Err(InvalidRequest::Date("22.11.2026".into()))
        );

        for bad in [0.0, -1.0, 2.5, f32::NAN] {
            let q = HoroscopeQuery {
                temperature: Some(bad),
                ..query("leo")
            };
            assert!(matches!(
                q.validate(today()),
                Err(InvalidRequest::Temperature(_))
            ));
        }
        let q = HoroscopeQuery {
            top_p: Some(1.5),
            ..query("leo")
        };
        assert_eq!(q.validate(today()), Err(InvalidRequest::TopP(1.5)));
    }

    #[test]
    fn explicit_values_are_kept() {
        let q = HoroscopeQuery {
            sign: "♈".into(),
            date: Some("2026-03-21".into()),
            temperature: Some(1.0),
            top_p: Some(0.9),
            seed: Some(7),
            lang: Some("en".into()),
        };
        let request = q.validate(today()).unwrap();
        assert_eq!(request.date, NaiveDate::from_ymd_opt(2026, 3, 21).unwrap());
        assert_eq!((request.temperature, request.top_p), (1.0, 0.9));
        assert_eq!(request.seed, Some(7));
    }
}
