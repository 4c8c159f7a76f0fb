//! The models a server is serving right now, one per task, swappable while
//! it serves: a request takes the model that was current when it began.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::{ActorRecognizer, HoroscopeWriter, Language, ModelInfo};

/// One actor model and a horoscope model per language; a task without one
/// answers that no model is loaded instead of guessing.
#[derive(Clone, Default)]
pub struct Models {
    pub actors: Option<Arc<dyn ActorRecognizer>>,
    /// At most one per language: the first one of a language is served.
    pub horoscopes: Vec<Arc<dyn HoroscopeWriter>>,
}

/// The language a horoscope model writes.
pub fn writes(writer: &dyn HoroscopeWriter) -> Language {
    writer.info().language.unwrap_or_default()
}

/// The served [`Models`], shared by every request and replaceable at once.
#[derive(Clone, Default)]
pub struct ServedModels {
    current: Arc<RwLock<Models>>,
    /// Whether the first models are still loading.
    loading: Arc<AtomicBool>,
}

impl From<Models> for ServedModels {
    fn from(models: Models) -> Self {
        ServedModels {
            current: Arc::new(RwLock::new(models)),
            loading: Arc::default(),
        }
    }
}

impl ServedModels {
    /// None yet: the first models are loading, and
    /// [`finish_loading`](Self::finish_loading) will serve them.
    pub fn loading() -> Self {
        ServedModels {
            current: Arc::default(),
            loading: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether the first models are still loading.
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::SeqCst)
    }

    /// Serves the first models (none, when they failed to load).
    pub fn finish_loading(&self, models: Models) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = models;
        self.loading.store(false, Ordering::SeqCst);
    }

    fn now(&self) -> Models {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn actors(&self) -> Option<Arc<dyn ActorRecognizer>> {
        self.now().actors
    }

    /// The horoscope model that writes `language`.
    pub fn horoscope(&self, language: Language) -> Option<Arc<dyn HoroscopeWriter>> {
        self.now()
            .horoscopes
            .into_iter()
            .find(|writer| writes(writer.as_ref()) == language)
    }

    /// The languages horoscopes are served in.
    pub fn horoscope_languages(&self) -> Vec<Language> {
        let mut languages: Vec<Language> = self
            .now()
            .horoscopes
            .iter()
            .map(|writer| writes(writer.as_ref()))
            .collect();
        languages.sort_unstable();
        languages.dedup();
        languages
    }

    /// Serves another actor model from the next request on; requests in
    /// flight finish with the one they started with.
    pub fn serve_actors(&self, model: Arc<dyn ActorRecognizer>) {
        self.current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .actors = Some(model);
    }

    /// What is served, for the Models page and `GET /api/models`.
    pub fn infos(&self) -> Vec<ModelInfo> {
        let models = self.now();
        let actors = models.actors.iter().map(|m| m.info().clone());
        let horoscopes = models.horoscopes.iter().map(|m| m.info().clone());
        actors.chain(horoscopes).collect()
    }
}
