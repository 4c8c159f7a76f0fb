//! One module per page.

pub mod actors;
pub mod api_docs;
pub mod horoscope;
pub mod models;
pub mod pipeline;
