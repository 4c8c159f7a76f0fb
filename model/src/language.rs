//! The languages horoscopes are written in and the interface speaks:
//! English and Russian, the seed project's own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Ru,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Ru];

    /// The ISO 639-1 code: `en`, `ru`.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ru => "ru",
        }
    }

    /// The language's name in itself, for a language switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Ru => "Русский",
        }
    }

    /// Russian when `text` has a Cyrillic letter, else English: a sign
    /// written "Лев" asks for a Russian horoscope.
    pub fn of_text(text: &str) -> Self {
        if text.chars().any(|c| matches!(c, '\u{0400}'..='\u{04FF}')) {
            Language::Ru
        } else {
            Language::En
        }
    }

    /// The first language of an `Accept-Language` header that is served,
    /// by its quality values; `None` when it names neither.
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut ranked: Vec<(f32, usize, Language)> = header
            .split(',')
            .enumerate()
            .filter_map(|(index, range)| {
                let mut parts = range.split(';');
                let tag = parts.next()?.trim();
                let quality = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                let primary = tag.split('-').next()?;
                let language = primary.parse::<Language>().ok()?;
                (quality > 0.0).then_some((quality, index, language))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.first().map(|&(_, _, language)| language)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A language this app doesn't write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the language '{given}' is not served: use en (English) or ru (Russian)")]
pub struct UnknownLanguage {
    pub given: String,
}

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "en" | "english" | "английский" => Ok(Language::En),
            "ru" | "russian" | "русский" => Ok(Language::Ru),
            _ => Err(UnknownLanguage {
                given: s.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyrillic_means_russian() {
        assert_eq!(Language::of_text("Лев"), Language::Ru);
        assert_eq!(Language::of_text("♌ Leo"), Language::En);
    }

    #[test]
    fn accept_language_picks_the_best_served_range() {
        let pick = Language::from_accept_language;
        assert_eq!(pick("ru-RU,ru;q=0.9,en-US;q=0.8"), Some(Language::Ru));
        assert_eq!(pick("de-DE,en;q=0.5,ru;q=0.7"), Some(Language::Ru));
        assert_eq!(pick("fr, en-GB;q=0.1"), Some(Language::En));
        assert_eq!(pick("ru;q=0, en;q=0.2"), Some(Language::En));
        assert_eq!(pick("de, fr"), None);
        assert_eq!(pick(""), None);
    }

    #[test]
    fn codes_and_names_parse() {
        for language in Language::ALL {
            assert_eq!(language.code().parse::<Language>(), Ok(language));
        }
        assert_eq!("Russian".parse::<Language>(), Ok(Language::Ru));
        assert!(
            "de".parse::<Language>()
                .unwrap_err()
                .to_string()
                .contains("en (English)")
        );
    }
}
