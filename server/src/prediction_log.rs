//! The prediction log, kept off the request path: each answered photo's
//! record goes into a bounded queue and one task writes the queue to the
//! records database in batches. A full queue or an unreachable database
//! costs log rows (counted, and warned about), never a request or its time.
//! `/metrics` reads the log back: the served model's confidence over the
//! last hour, as written by every replica that shares the database.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use starcast_api::{ModelInfo, Monitoring};
use starcast_pipeline::records::{ConfidenceDistribution, PredictionRecord, Records};
use tokio::sync::mpsc;

/// Rows waiting to be written, at most.
const QUEUED: usize = 4096;
/// Rows written in one transaction, at most.
const BATCH: usize = 256;
/// The span `/metrics` reports the served model's confidence over.
const RECENT: chrono::Duration = chrono::Duration::hours(1);
const BOUNDS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

#[derive(Clone)]
pub struct PredictionLog {
    records: Records,
    queue: mpsc::Sender<PredictionRecord>,
    lost: Arc<AtomicU64>,
}

impl PredictionLog {
    /// Starts the writer task on the current runtime.
    pub fn start(records: Records) -> Self {
        let (queue, rows) = mpsc::channel(QUEUED);
        let lost = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(records.clone(), rows, lost.clone()));
        PredictionLog {
            records,
            queue,
            lost,
        }
    }

    /// Queues the record of `model`'s answer `label` at `confidence`.
    pub fn log(&self, model: &ModelInfo, label: &str, confidence: f32, latency_ms: f64) {
        let record = PredictionRecord {
            at: Utc::now(),
            task: "actors".into(),
            model: model.name.clone(),
            version: model.version.clone(),
            label: label.to_string(),
            confidence: f64::from(confidence),
            latency_ms,
        };
        if self.queue.try_send(record).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The served model's answers over the last hour, by every replica
    /// that logs here; none when the database doesn't answer in time.
    async fn recent(&self, model: &ModelInfo) -> Option<ConfidenceDistribution> {
        let read = self.records.confidence_distribution(
            "actors",
            &model.name,
            &model.version,
            Utc::now() - RECENT,
            &BOUNDS,
        );
        match tokio::time::timeout(Duration::from_secs(2), read).await {
            Ok(Ok(distribution)) => Some(distribution),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not read the prediction log");
                None
            }
            Err(_) => {
                tracing::warn!("the prediction log did not answer within 2 s");
                None
            }
        }
    }

    /// The Prometheus text of the served model's confidence over the last
    /// hour, and of the log's lost rows.
    pub async fn recent_confidence(&self, served: Option<&ModelInfo>) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# HELP starcast_prediction_log_lost Answers whose record the prediction log could not keep.\n\
             # TYPE starcast_prediction_log_lost counter\n\
             starcast_prediction_log_lost_total {}",
            self.lost.load(Ordering::Relaxed)
        );
        let Some(model) = served else {
            return text;
        };
        let Some(distribution) = self.recent(model).await else {
            return text;
        };
        let labels = format!(
            "model=\"{}@{}\"",
            escaped(&model.name),
            escaped(&model.version)
        );
        let _ = writeln!(
            text,
            "# HELP starcast_recent_prediction_confidence The served actor model's top-label scores over the last hour, from the prediction log every replica writes.\n\
             # TYPE starcast_recent_prediction_confidence histogram"
        );
        for (bound, count) in distribution.bounds.iter().zip(&distribution.at_most) {
            let _ = writeln!(
                text,
                "starcast_recent_prediction_confidence_bucket{{{labels},le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            text,
            "starcast_recent_prediction_confidence_bucket{{{labels},le=\"+Inf\"}} {count}\n\
             starcast_recent_prediction_confidence_sum{{{labels}}} {sum}\n\
             starcast_recent_prediction_confidence_count{{{labels}}} {count}",
            count = distribution.count,
            sum = distribution.sum
        );
        text
    }

    /// The Pipeline page's view of the served model's last hour.
    pub async fn monitoring(&self, served: Option<&ModelInfo>) -> Monitoring {
        let mut monitoring = Monitoring {
            model: served.map(|model| format!("{}@{}", model.name, model.version)),
            logged: true,
            hours: RECENT.num_hours() as u32,
            ..Monitoring::default()
        };
        let Some(distribution) = (match served {
            Some(model) => self.recent(model).await,
            None => None,
        }) else {
            return monitoring;
        };
        let mut below = 0;
        monitoring.per_tenth = distribution
            .at_most
            .iter()
            .map(|&at_most| {
                let tenth = at_most - below;
                below = at_most;
                tenth
            })
            .collect();
        monitoring.answers = distribution.count;
        monitoring.mean_confidence =
            (distribution.count > 0).then(|| distribution.sum / distribution.count as f64);
        monitoring
    }
}

/// A label value as the text format needs it.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn write_batches(
    records: Records,
    mut rows: mpsc::Receiver<PredictionRecord>,
    lost: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rows.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(error) = records.log_predictions(&batch).await {
            lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(%error, rows = batch.len(), "the prediction log lost rows");
        }
        batch.clear();
    }
}
