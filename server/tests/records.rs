//! The records database on a real PostgreSQL server (Debian's package, a
//! fresh cluster on loopback): the prediction log's schema, writes and
//! reads through the same code as SQLite's, and two `starcast serve`
//! replicas logging to it, each reporting both replicas' answers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::postgres::Postgres;
use common::{Multipart, ServeProcess, THREE_CLASS_CONFIG, png, three_class_safetensors};
use starcast_pipeline::records::{PredictionRecord, Records};

#[tokio::test]
async fn the_prediction_log_on_postgres_counts_recent_confidence() {
    let postgres = Postgres::start();
    let records = Records::open(&postgres.url).await.unwrap();
    let now = Utc
        .timestamp_millis_opt(Utc::now().timestamp_millis())
        .unwrap();
    let row = |version: &str, confidence: f64, hours_ago: i64| PredictionRecord {
        at: now - chrono::Duration::hours(hours_ago),
        task: "actors".into(),
        model: "resnet18-actors".into(),
        version: version.into(),
        label: "Ada".into(),
        confidence,
        latency_ms: 20.0,
    };
    let rows = [
        row("v1", 0.97, 0),
        row("v1", 0.4, 0),
        row("v1", 0.9, 3),
        row("v2", 0.2, 0),
    ];
    records.log_predictions(&rows).await.unwrap();
    let distribution = records
        .confidence_distribution(
            "actors",
            "resnet18-actors",
            "v1",
            now - chrono::Duration::hours(1),
            &[0.5, 1.0],
        )
        .await
        .unwrap();
    assert_eq!(distribution.at_most, [1, 2]);
    assert_eq!(distribution.count, 2);
    let recent = records.recent_predictions(10).await.unwrap();
    assert_eq!(recent.len(), 4);
    assert!(recent.contains(&rows[3]), "{recent:?}");
    let again = Records::open(&postgres.url).await.unwrap();
    assert_eq!(
        again.recent_predictions(10).await.unwrap().len(),
        4,
        "the schema is applied once"
    );
}

/// `starcast_recent_prediction_confidence_count`'s value, if reported.
fn recent_count(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|line| line.starts_with("starcast_recent_prediction_confidence_count{"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn replica(model: &Path, data: &Path, records: &str) -> ServeProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starcast"));
    command
        .env("RUST_LOG", "warn")
        .env_remove("STARCAST_RECORDS");
    let args = [
        "--actors-model".as_ref(),
        model.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--records".as_ref(),
        records.as_ref(),
    ];
    ServeProcess::start(command, args)
}

#[test]
fn replicas_log_predictions_to_one_database_and_each_reports_them_all() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("model.safetensors"), three_class_safetensors()).unwrap();
    std::fs::write(model.join("config.json"), THREE_CLASS_CONFIG).unwrap();
    let replicas = [
        replica(&model, &dir.path().join("one"), &postgres.url),
        replica(&model, &dir.path().join("two"), &postgres.url),
    ];
    let photo = png(64, 48, [200, 30, 30]);
    for (n, replica) in replicas.iter().cycle().take(5).enumerate() {
        let request = Multipart::default()
            .file("image", "red.png", &photo)
            .raw("/api/actors/predict", "");
        let answer = replica.send(&request);
        assert!(answer.starts_with("HTTP/1.1 200"), "photo {n}: {answer}");
    }
    // The log is written in the background: wait until both replicas
    // report the five answers.
    let started = Instant::now();
    loop {
        let counts: Vec<Option<u64>> = replicas
            .iter()
            .map(|replica| replica.get("/metrics").as_deref().and_then(recent_count))
            .collect();
        if counts == [Some(5), Some(5)] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replicas report {counts:?} answers, not 5 each"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = replicas[0].get("/metrics").unwrap();
    assert!(
        metrics.contains(r#"le="1"} 5"#) || metrics.contains(r#"le="1.0"} 5"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("starcast_prediction_log_lost_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.trim_end().ends_with("# EOF"),
        "still one exposition: {metrics}"
    );
}
