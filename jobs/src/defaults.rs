//! The model folders `scripts/fetch-defaults.sh` prepares under
//! `<data>/models/`: what serving and the daily loop use when no model is named.

use starcast_model::Language;

/// The English horoscope model.
pub const HOROSCOPE_MODEL: &str = "smollm2-135m-instruct";
/// The Russian horoscope model.
pub const RUSSIAN_HOROSCOPE_MODEL: &str = "gemma-3-270m";
/// The actor model.
pub const ACTORS_MODEL: &str = "face-gallery";

/// The default horoscope model folder for `language`.
pub fn horoscope_model(language: Language) -> &'static str {
    match language {
        Language::En => HOROSCOPE_MODEL,
        Language::Ru => RUSSIAN_HOROSCOPE_MODEL,
    }
}
