//! The models a server is serving right now, one per task.

use std::sync::Arc;

use crate::{ActorRecognizer, HoroscopeWriter, ModelInfo};

/// The served model of each task; a task without one answers that no model
/// is loaded instead of guessing.
#[derive(Clone, Default)]
pub struct ServedModels {
    pub actors: Option<Arc<dyn ActorRecognizer>>,
    pub horoscope: Option<Arc<dyn HoroscopeWriter>>,
}

impl ServedModels {
    /// What is served, for the Models page and `GET /api/models`.
    pub fn infos(&self) -> Vec<ModelInfo> {
        let actors = self.actors.iter().map(|m| m.info().clone());
        let horoscope = self.horoscope.iter().map(|m| m.info().clone());
        actors.chain(horoscope).collect()
    }
}
