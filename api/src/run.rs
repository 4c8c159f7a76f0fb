//! The record of a daily-loop run, as the scheduler saves it and the
//! Pipeline page shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a pipeline run or one of its steps ended, or that it is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A step whose turn hasn't come.
    Waiting,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl RunStatus {
    /// The status as the records and the wire name it: `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Waiting => "waiting",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The server's `--schedule`.
    Schedule,
    /// An admin, from the Pipeline page or the API.
    Admin,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Schedule => "schedule",
            Trigger::Admin => "admin",
        })
    }
}

/// One step of a pipeline run: a `starcast` subcommand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRun {
    pub name: String,
    /// The subcommand's arguments, as cron or Airflow would run them.
    pub command: String,
    pub status: RunStatus,
    pub attempts: u32,
    pub seconds: f64,
    /// Why it was skipped, or the end of its output.
    pub log: String,
    /// The figures the step reported (rows kept, accuracy, perplexity, ...).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// A run of the daily loop, started by the schedule or an admin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineRun {
    pub id: String,
    pub trigger: Trigger,
    pub started: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    pub status: RunStatus,
    pub steps: Vec<StepRun>,
}
