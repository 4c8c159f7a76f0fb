//! The model folders `scripts/fetch-defaults.sh` prepares under
//! `<data>/models/`: what serving and the daily loop use when no model is named.

/// The horoscope model.
pub const HOROSCOPE_MODEL: &str = "smollm2-135m-instruct";
/// The actor model.
pub const ACTORS_MODEL: &str = "face-gallery";
