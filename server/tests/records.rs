//! The records database on a real PostgreSQL server (Debian's package, a
//! fresh cluster on loopback): the prediction log's schema, writes and
//! reads through the same code as SQLite's; two `starcast serve` replicas
//! logging to it, each reporting both replicas' answers; and two replicas
//! storing flags at once, their photos in one bucket (moto), all kept; and
//! the daily loop's run records of two runners.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::moto::Moto;
use common::postgres::Postgres;
use common::{
    Multipart, ServeProcess, THREE_CLASS_CONFIG, png, post_flag, three_class_safetensors,
};
use starcast_api::{PipelineRun, RunStatus, Trigger};
use starcast_pipeline::records::{PredictionRecord, Records};
use starcast_pipeline::runs::RunRecords;

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

/// The three-class test classifier, as a model folder in `dir`.
fn three_class_model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("model.safetensors"), three_class_safetensors()).unwrap();
    std::fs::write(model.join("config.json"), THREE_CLASS_CONFIG).unwrap();
    model
}

/// `starcast serve` of `model` over `data`, keeping its records in
/// `records`, with `more` options and `env`.
fn replica(
    model: &Path,
    data: &Path,
    records: &str,
    more: &[&str],
    env: &[(&str, String)],
) -> ServeProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starcast"));
    command
        .env("RUST_LOG", "warn")
        .env_remove("STARCAST_RECORDS")
        .envs(env.iter().map(|(name, value)| (name, value)));
    let args = [
        "--actors-model".as_ref(),
        model.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--records".as_ref(),
        records.as_ref(),
    ];
    ServeProcess::start(
        command,
        args.into_iter().chain(more.iter().map(|a| a.as_ref())),
    )
}

#[test]
fn replicas_log_predictions_to_one_database_and_each_reports_them_all() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let model = three_class_model(dir.path());
    let replicas =
        ["one", "two"].map(|name| replica(&model, &dir.path().join(name), &postgres.url, &[], &[]));
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

#[test]
fn replicas_store_flags_at_once_in_one_database_and_bucket_and_keep_them_all() {
    let postgres = Postgres::start();
    let moto = Moto::start();
    assert_eq!(moto.http("PUT", "/flags", b"").0, 200);
    let photos = "s3://flags/review";
    let dir = tempfile::tempdir().unwrap();
    let model = three_class_model(dir.path());
    let more = ["--flag-photos", photos, "--trusted-proxy", "127.0.0.1"];
    let servers = ["one", "two"].map(|name| {
        replica(
            &model,
            &dir.path().join(name),
            &postgres.url,
            &more,
            &moto.env(),
        )
    });
    let replicas = [servers[0].port, servers[1].port];

    // 8 clients at once, each sending 6 flags, alternately to each replica,
    // each flag with a photo of its own.
    let sent: Vec<(String, Vec<u8>)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8u8)
            .map(|client| {
                scope.spawn(move || {
                    (0..6u8)
                        .map(|n| {
                            let photo = png(32, 32, [client * 30, n * 40, 7]);
                            let port = replicas[usize::from((client + n) % 2)];
                            let id = post_flag(port, u32::from(client) << 8 | u32::from(n), &photo)
                                .expect("the replica answers");
                            (id, photo)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert_eq!(sent.len(), 48);

    // Read back by the daily loop's step on a third process.
    let out = dir.path().join("flagged");
    let output = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .envs(moto.env())
        .args(["dataset", "flags", "--records", &postgres.url])
        .args(["--flag-photos", photos, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exported = std::fs::read_dir(out.join("Ada")).unwrap().count();
    assert_eq!(exported, 48, "every flag of both replicas is kept");
    for (id, photo) in &sent {
        let file = out.join("Ada").join(format!("{id}.png"));
        assert_eq!(&std::fs::read(&file).unwrap(), photo, "flag {id}'s photo");
    }
    assert_eq!(moto.keys("flags", "review/").len(), 48);
}

#[tokio::test]
async fn pipeline_runs_on_postgres_are_listed_for_all_and_closed_per_runner() {
    let postgres = Postgres::start();
    let records = Records::open(&postgres.url).await.unwrap();
    let started = Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap();
    let run = |id: &str, minutes: i64, status| PipelineRun {
        id: id.into(),
        trigger: Trigger::Schedule,
        started: started + chrono::Duration::minutes(minutes),
        seconds: 0.0,
        status,
        steps: Vec::new(),
    };
    let one = RunRecords::new(records.clone(), "replica-one");
    let two = RunRecords::new(records, "replica-two");
    one.keep(&run("a", 0, RunStatus::Running)).await.unwrap();
    two.keep(&run("a", 1, RunStatus::Running)).await.unwrap();
    one.keep(&run("a", 0, RunStatus::Succeeded)).await.unwrap();
    let latest = two.latest(10).await.unwrap();
    assert_eq!(
        latest,
        [
            run("a", 1, RunStatus::Running),
            run("a", 0, RunStatus::Succeeded)
        ]
    );
    assert!(one.running_here().await.unwrap().is_empty());
    assert_eq!(two.running_here().await.unwrap().len(), 1);
}
