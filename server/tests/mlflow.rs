//! A training run logged to a real MLflow tracking server on loopback
//! (scripts/setup.sh --test installs it from PyPI): parameters, metrics per
//! epoch, the model folder's files; an unreachable server loses nothing.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::photo_dataset;
use serde_json::{Value, json};

struct Mlflow {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Drop for Mlflow {
    /// Stops the whole process group: `mlflow server` starts uvicorn and
    /// job consumers as children, which outlived a kill of the parent.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
            if signal == "-TERM" {
                let _ = self.child.wait();
            }
        }
    }
}

fn mlflow_binary() -> PathBuf {
    std::env::var_os("MLFLOW")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/starcast-tools/mlflow-venv/bin/mlflow")
        })
}

fn start_mlflow() -> Mlflow {
    let binary = mlflow_binary();
    assert!(
        binary.is_file(),
        "{} is missing: run scripts/setup.sh --test (it installs MLflow from PyPI)",
        binary.display()
    );
    let store = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let database = format!("sqlite:///{}", store.path().join("mlflow.db").display());
    let child = Command::new(binary)
        .args([
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .args(["--backend-store-uri", &database])
        .arg("--artifacts-destination")
        .arg(store.path().join("artifacts"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mlflow = Mlflow {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _store: store,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while ureq::get(&format!("{}/health", mlflow.url)).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "MLflow did not start within 120 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    mlflow
}

fn get(url: &str) -> Value {
    ureq::get(url).call().unwrap().into_json().unwrap()
}

fn train(photos: &Path, out: &Path, mlflow: &str) -> Output {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/mobilenet-v2-imagenet");
    Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args([
            "train",
            "actors",
            "--epochs",
            "2",
            "--batch",
            "4",
            "--experiment",
            "actors-e2e",
        ])
        .arg("--data")
        .arg(photos)
        .arg("--base")
        .arg(base)
        .arg("--out")
        .arg(out)
        .args(["--mlflow", mlflow])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_training_run_lands_in_mlflow_with_parameters_epochs_and_files() {
    let mlflow = start_mlflow();
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    photo_dataset(&photos, &[("cat", "chelsea.png"), ("coffee", "coffee.png")]);
    let out = dir.path().join("model");
    let output = train(&photos, &out, &mlflow.url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let api = format!("{}/api/2.0/mlflow", mlflow.url);
    let experiment = get(&format!(
        "{api}/experiments/get-by-name?experiment_name=actors-e2e"
    ));
    let experiment_id = experiment["experiment"]["experiment_id"].as_str().unwrap();
    let runs: Value = ureq::post(&format!("{api}/runs/search"))
        .send_json(json!({ "experiment_ids": [experiment_id] }))
        .unwrap()
        .into_json()
        .unwrap();
    let run = &runs["runs"][0];
    assert_eq!(run["info"]["status"], "FINISHED");
    let params = run["data"]["params"].as_array().unwrap();
    let param = |key: &str| {
        params
            .iter()
            .find(|p| p["key"] == key)
            .map(|p| p["value"].as_str().unwrap().to_string())
    };
    assert_eq!(param("epochs").as_deref(), Some("2"));
    assert_eq!(param("labels").as_deref(), Some("cat, coffee"));
    assert_eq!(param("method").as_deref(), Some("head-only"));

    let run_id = run["info"]["run_id"].as_str().unwrap();
    let history = get(&format!(
        "{api}/metrics/get-history?run_id={run_id}&metric_key=validation_accuracy"
    ));
    let steps: Vec<u64> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps.len(), 2, "one point per epoch: {history}");
    let accuracy = get(&format!(
        "{api}/metrics/get-history?run_id={run_id}&metric_key=accuracy"
    ));
    assert!(accuracy["metrics"][0]["value"].as_f64().unwrap() > 0.0);

    let files = get(&format!("{api}/artifacts/list?run_id={run_id}"));
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for name in ["config.json", "metrics.json", "training.json", "curves.svg"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn an_unreachable_tracking_server_fails_the_command_but_keeps_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    photo_dataset(&photos, &[("cat", "chelsea.png"), ("coffee", "coffee.png")]);
    let out = dir.path().join("model");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = train(&photos, &out, &format!("http://127.0.0.1:{closed}"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the model is saved in"), "{stderr}");
    assert!(stderr.contains("MLflow"), "{stderr}");
    assert!(out.join("model.safetensors").is_file());
}
