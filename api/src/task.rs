//! The two things the app does, each with its own served model, registry
//! history, flags and metrics.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A served task: the registry keeps a history per task, a flag names
/// the page it came from, and the metrics count per task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Who is in a photo.
    Actors,
    /// A daily horoscope for a sign.
    Horoscope,
}

impl Task {
    pub const ALL: [Task; 2] = [Task::Actors, Task::Horoscope];

    /// The name in URLs, folders, flags and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Actors => "actors",
            Task::Horoscope => "horoscope",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task name that is not one of [`Task::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a task: use actors or horoscope")]
pub struct UnknownTask(pub String);

impl FromStr for Task {
    type Err = UnknownTask;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Task::ALL
            .into_iter()
            .find(|task| task.as_str() == name)
            .ok_or_else(|| UnknownTask(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for task in Task::ALL {
            assert_eq!(task.as_str().parse::<Task>(), Ok(task));
            let json = serde_json::to_string(&task).unwrap();
            assert_eq!(json, format!("\"{task}\""));
        }
        let err = "../etc".parse::<Task>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'../etc' is not a task: use actors or horoscope"
        );
    }
}
