//! What the Pipeline page shows of the served model's answers: how sure it
//! has been lately, from the prediction log every replica writes.

use serde::{Deserialize, Serialize};

/// The served actor model's confidence over the last hours.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Monitoring {
    /// `name@version` of the served actor model; none while none is served.
    pub model: Option<String>,
    /// Whether this server keeps a prediction log (`--records`).
    pub logged: bool,
    /// The span covered, in hours.
    pub hours: u32,
    /// Answers in the span.
    pub answers: u64,
    /// The mean top-label score of those answers.
    pub mean_confidence: Option<f64>,
    /// Answers per tenth of the top-label score: `[0, 0.1]`, `(0.1, 0.2]`, ... `(0.9, 1]`.
    pub per_tenth: Vec<u64>,
}
