//! The daily loop's run records in the records database (`crate::records`),
//! which every replica shares: each run as the JSON the Pipeline page
//! shows, under the runner (a data folder's server) that ran it.

use sqlx::Row;
use starcast_api::{PipelineRun, RunStatus};

use crate::records::{Records, RecordsError};

/// The largest run record read back: a run's step logs are tails, so a
/// larger one was not written by a server.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// The runs of every runner, written as `runner`.
#[derive(Clone, Debug)]
pub struct RunRecords {
    records: Records,
    runner: String,
}

impl RunRecords {
    pub fn new(records: Records, runner: impl Into<String>) -> Self {
        RunRecords {
            records,
            runner: runner.into(),
        }
    }

    /// Records `run` as it stands, replacing what was recorded of it.
    pub async fn keep(&self, run: &PipelineRun) -> Result<(), RecordsError> {
        let what = "the pipeline run's record";
        let record = serde_json::to_string(run).expect("a run always serialises");
        sqlx::query(
            "INSERT INTO pipeline_runs (runner, id, started_ms, status, record) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (runner, id) DO UPDATE SET status = excluded.status, record = excluded.record",
        )
        .bind(&self.runner)
        .bind(&run.id)
        .bind(run.started.timestamp_millis())
        .bind(run.status.as_str())
        .bind(record)
        .execute(self.records.pool())
        .await
        .map_err(self.records.refused(what))?;
        Ok(())
    }

    /// The latest `limit` runs of every runner, newest first; a damaged
    /// record is skipped with a warning.
    pub async fn latest(&self, limit: u32) -> Result<Vec<PipelineRun>, RecordsError> {
        let rows = sqlx::query(
            "SELECT id, record FROM pipeline_runs ORDER BY started_ms DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.records.pool())
        .await
        .map_err(self.records.refused("reading the pipeline runs"))?;
        Ok(rows.iter().filter_map(run_of).collect())
    }

    /// This runner's runs recorded as running.
    pub async fn running_here(&self) -> Result<Vec<PipelineRun>, RecordsError> {
        let rows = sqlx::query(
            "SELECT id, record FROM pipeline_runs WHERE runner = $1 AND status = $2 ORDER BY id",
        )
        .bind(&self.runner)
        .bind(RunStatus::Running.as_str())
        .fetch_all(self.records.pool())
        .await
        .map_err(self.records.refused("reading the pipeline runs"))?;
        Ok(rows.iter().filter_map(run_of).collect())
    }
}

/// The run a row holds, or none (with a warning) when it can't be read.
fn run_of(row: &sqlx::any::AnyRow) -> Option<PipelineRun> {
    let id: String = row.try_get(0).unwrap_or_default();
    let read = row.try_get::<String, _>(1).map_err(|e| e.to_string());
    let parsed = read.and_then(|text| {
        if text.len() > MAX_RECORD_BYTES {
            return Err(format!("{} bytes, more than any run record", text.len()));
        }
        serde_json::from_str::<PipelineRun>(&text).map_err(|e| e.to_string())
    });
    match parsed {
        Ok(run) => Some(run),
        Err(error) => {
            tracing::warn!(%id, %error, "skipping a pipeline run record that can't be read");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use starcast_api::Trigger;

    fn run(id: &str, minute: u32, status: RunStatus) -> PipelineRun {
        PipelineRun {
            id: id.into(),
            trigger: Trigger::Schedule,
            started: Utc.with_ymd_and_hms(2026, 12, 7, 3, minute, 0).unwrap(),
            seconds: 1.5,
            status,
            steps: Vec::new(),
        }
    }

    #[tokio::test]
    async fn runs_of_every_runner_are_listed_newest_first_and_closed_per_runner() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("records.db").display());
        let records = Records::open(&url).await.unwrap();
        let here = RunRecords::new(records.clone(), "one");
        let there = RunRecords::new(records.clone(), "two");
        here.keep(&run("a", 0, RunStatus::Running)).await.unwrap();
        there.keep(&run("a", 1, RunStatus::Running)).await.unwrap();
        here.keep(&run("b", 2, RunStatus::Running)).await.unwrap();
        here.keep(&run("b", 2, RunStatus::Succeeded)).await.unwrap();
        sqlx::query(
            "INSERT INTO pipeline_runs (runner, id, started_ms, status, record) \
             VALUES ('one', 'damaged', 0, 'running', '{oops')",
        )
        .execute(records.pool())
        .await
        .unwrap();

        let latest = here.latest(10).await.unwrap();
        let seen: Vec<(&str, u32, RunStatus)> = latest
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.started.format("%M").to_string().parse().unwrap(),
                    r.status,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("b", 2, RunStatus::Succeeded),
                ("a", 1, RunStatus::Running),
                ("a", 0, RunStatus::Running)
            ]
        );
        assert_eq!(here.latest(1).await.unwrap().len(), 1);
        let running = here.running_here().await.unwrap();
        assert_eq!(running, vec![run("a", 0, RunStatus::Running)]);
    }
}
