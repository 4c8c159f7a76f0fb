//! Records every replica writes to and reads from one database: the
//! prediction log (each answered classification's model version, label,
//! confidence and latency; never the photo), for monitoring, and the review
//! queue of flagged results (`crate::flags`). SQLite by
//! default, a file in the data folder; PostgreSQL by URL. One code path
//! serves both (sqlx's `Any` driver), and the schema is the migrations in
//! `pipeline/migrations`, applied when the records are opened.

use std::sync::Once;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(
        "could not open the records at {url}: {reason} (use sqlite://PATH or postgres://USER@HOST/DATABASE)"
    )]
    Open { url: String, reason: String },
    #[error("the records at {url} refused {what}: {reason}")]
    Query {
        url: String,
        what: &'static str,
        reason: String,
    },
}

/// The records database a data folder keeps when no other is named.
pub fn default_url(data: &std::path::Path) -> String {
    format!("sqlite://{}", data.join("records.db").display())
}

/// One answered classification.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PredictionRecord {
    pub at: DateTime<Utc>,
    /// `actors`.
    pub task: String,
    pub model: String,
    pub version: String,
    /// The top label and its score.
    pub label: String,
    pub confidence: f64,
    pub latency_ms: f64,
}

/// How sure a model was of its answers over a span: counts of top-label
/// scores at most each bound, as Prometheus histograms count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfidenceDistribution {
    pub bounds: Vec<f64>,
    /// `at_most[i]` answers scored at most `bounds[i]`.
    pub at_most: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// The records database.
#[derive(Clone, Debug)]
pub struct Records {
    pool: AnyPool,
    /// The URL without its password, for messages.
    url: String,
}

/// The URL with any password replaced, fit for a log or an error.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The file a `sqlite://PATH` URL names, if it names one (not `:memory:`).
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let path = url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(':')).then(|| std::path::Path::new(path))
}

impl Records {
    /// Opens (and for SQLite creates, with its folder) the database at
    /// `url`, bringing its schema up to date.
    pub async fn open(url: &str) -> Result<Self, RecordsError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(install_default_drivers);
        let fail = |reason: String| RecordsError::Open {
            url: shown(url),
            reason,
        };
        if let Some(file) = sqlite_file(url)
            && let Some(folder) = file.parent().filter(|f| !f.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|e| fail(e.to_string()))?;
        }
        let connect = if url.starts_with("sqlite:") && !url.contains("mode=") {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}mode=rwc")
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&connect)
            .await
            .map_err(|e| fail(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| fail(format!("its schema could not be brought up to date: {e}")))?;
        if url.starts_with("sqlite:") {
            // A commit then flushes one log instead of a rollback journal and
            // the database, and readers (the Pipeline page, the loop's flag
            // step) no longer wait for writers. The file remembers the mode.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(|e| fail(format!("it refused write-ahead logging: {e}")))?;
        }
        Ok(Records {
            pool,
            url: shown(url),
        })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Maps a database error while doing `what` to one that names the database.
    pub(crate) fn refused(
        &self,
        what: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> RecordsError + '_ {
        move |error| RecordsError::Query {
            url: self.url.clone(),
            what,
            reason: error.to_string(),
        }
    }

    /// Adds `rows` to the prediction log, all or none.
    pub async fn log_predictions(&self, rows: &[PredictionRecord]) -> Result<(), RecordsError> {
        let what = "the prediction log's new rows";
        let mut transaction = self.pool.begin().await.map_err(self.refused(what))?;
        for row in rows {
            sqlx::query(
                "INSERT INTO predictions (at_ms, task, model, version, label, confidence, latency_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(row.at.timestamp_millis())
            .bind(&row.task)
            .bind(&row.model)
            .bind(&row.version)
            .bind(&row.label)
            .bind(row.confidence)
            .bind(row.latency_ms)
            .execute(&mut *transaction)
            .await
            .map_err(self.refused(what))?;
        }
        transaction.commit().await.map_err(self.refused(what))
    }

    /// The newest `limit` predictions, newest first.
    pub async fn recent_predictions(
        &self,
        limit: u32,
    ) -> Result<Vec<PredictionRecord>, RecordsError> {
        let rows = sqlx::query(
            "SELECT at_ms, task, model, version, label, confidence, latency_ms FROM predictions \
             ORDER BY at_ms DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(self.refused("reading the prediction log"))?;
        rows.iter()
            .map(|row| {
                let at_ms: i64 = row.try_get(0)?;
                Ok(PredictionRecord {
                    at: Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default(),
                    task: row.try_get(1)?,
                    model: row.try_get(2)?,
                    version: row.try_get(3)?,
                    label: row.try_get(4)?,
                    confidence: row.try_get(5)?,
                    latency_ms: row.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.refused("reading the prediction log"))
    }

    /// How sure `model` `version` was of its `task` answers since `since`,
    /// by every replica that logs here.
    pub async fn confidence_distribution(
        &self,
        task: &str,
        model: &str,
        version: &str,
        since: DateTime<Utc>,
        bounds: &[f64],
    ) -> Result<ConfidenceDistribution, RecordsError> {
        let scores: Vec<f64> = sqlx::query_scalar(
            "SELECT confidence FROM predictions \
             WHERE task = $1 AND model = $2 AND version = $3 AND at_ms >= $4",
        )
        .bind(task)
        .bind(model)
        .bind(version)
        .bind(since.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(self.refused("reading the prediction log"))?;
        Ok(ConfidenceDistribution {
            bounds: bounds.to_vec(),
            at_most: bounds
                .iter()
                .map(|bound| scores.iter().filter(|score| *score <= bound).count() as u64)
                .collect(),
            count: scores.len() as u64,
            sum: scores.iter().sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(version: &str, confidence: f64, seconds_ago: i64) -> PredictionRecord {
        let at = Utc::now() - chrono::Duration::seconds(seconds_ago);
        PredictionRecord {
            // The log keeps milliseconds.
            at: Utc.timestamp_millis_opt(at.timestamp_millis()).unwrap(),
            task: "actors".into(),
            model: "resnet18-actors".into(),
            version: version.into(),
            label: "Ada".into(),
            confidence,
            latency_ms: 12.5,
        }
    }

    #[tokio::test]
    async fn the_prediction_log_counts_recent_confidence_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("records.db").display());
        let records = Records::open(&url).await.unwrap();
        let rows = [
            prediction("v1", 0.95, 10),
            prediction("v1", 0.45, 20),
            prediction("v1", 0.99, 7200),
            prediction("v2", 0.3, 5),
        ];
        records.log_predictions(&rows).await.unwrap();
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        let bounds = [0.5, 0.9, 1.0];
        let v1 = records
            .confidence_distribution("actors", "resnet18-actors", "v1", hour_ago, &bounds)
            .await
            .unwrap();
        assert_eq!(v1.at_most, [1, 1, 2], "the two-hour-old answer is left out");
        assert_eq!(v1.count, 2);
        assert!((v1.sum - 1.4).abs() < 1e-9);
        let recent = records.recent_predictions(2).await.unwrap();
        assert_eq!(recent[0], rows[3]);
        assert_eq!(recent.len(), 2);

        // Opened again (another replica, a restart): the rows and schema stay.
        let again = Records::open(&url).await.unwrap();
        assert_eq!(again.recent_predictions(10).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_url_no_driver_takes_says_how_to_name_a_database() {
        let error = Records::open("redis://starcast:secret@127.0.0.1/0")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("redis://starcast:***@127.0.0.1/0"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        assert!(
            error.contains("use sqlite://PATH or postgres://"),
            "{error}"
        );
    }
}
