//! Starcast's wire types: the bodies the REST API sends and receives, the
//! error body, the pipeline's run records and the served model's monitoring, the tasks the app serves and the
//! API described for its page.
//! The server, the UI (on both targets) and the jobs read them from here;
//! the prediction types come from the inference core and are re-exported,
//! so every wire type has one name and one home to import from.

mod monitoring;
mod reference;
mod run;
mod task;

use serde::{Deserialize, Serialize};

pub use monitoring::Monitoring;
pub use reference::{ApiEndpoint, ApiInput, ApiReference, InputPlace};
pub use run::{PipelineRun, RunStatus, StepRun, Trigger};
pub use starcast_model::horoscope::{DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_TEMPERATURE};
pub use starcast_model::{
    ActorReport, Face, Horoscope, HoroscopeQuery, HoroscopeRequest, Language, ModelInfo, ModelKind,
    Prediction, Recognition, ZodiacSign,
};
pub use task::{Task, UnknownTask};

/// The body of every error the REST API returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A sentence saying what went wrong and what to do.
    pub error: String,
}

/// The answer to `POST /api/flags`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagReceipt {
    pub id: String,
}

/// Where a waiting request stands: the `queued` event of a horoscope
/// stream, sent while it waits for its turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStatus {
    /// Requests ahead of this one.
    pub ahead: usize,
    /// About how long until its turn, in seconds.
    pub wait_s: f64,
}

/// A photo of the examples gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExamplePhoto {
    pub name: String,
    pub url: String,
}

/// A model the page can run in the visitor's browser: the answer to
/// `GET /api/browser/models` is a list of them, and on a static Space a
/// file of that name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrowserModel {
    pub task: Task,
    /// Text models: the language it writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Where the files come from, for people (the server, a Hub repo).
    pub source: String,
    /// The address the file names are relative to, ending in `/`.
    pub base: String,
    /// The model folder's files, by name relative to the folder.
    pub files: Vec<BrowserFile>,
}

/// One file of a [`BrowserModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrowserFile {
    pub name: String,
    /// Bytes, for the download's progress bar.
    pub size: u64,
}

impl BrowserModel {
    /// The key the browser's worker keeps the loaded model under.
    pub fn key(&self) -> String {
        match self.language {
            Some(language) => format!("{}-{}", self.task, language.code()),
            None => self.task.to_string(),
        }
    }
}
