//! One module per page.

pub mod actors;
pub mod horoscope;
pub mod models;
pub mod pipeline;
