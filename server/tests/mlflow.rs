//! A training run logged to a real MLflow tracking server on loopback
//! (scripts/setup.sh --test installs it from PyPI): parameters, metrics per
//! epoch, the model folder's files; an unreachable server loses nothing;
//! and MLflow's model registry following Starcast's, with `@champion` on
//! the served version and `@challenger` on a new one.

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

/// The names of a run's artifacts.
fn artifact_names(api: &str, run_id: &str) -> Vec<String> {
    let files = get(&format!("{api}/artifacts/list?run_id={run_id}"));
    files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// Trains into `target`: `--out FOLDER` or `--registry FOLDER`.
fn train(photos: &Path, target: [&str; 2], mlflow: &str) -> Output {
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
        .args(target)
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
    let registry = dir.path().join("registry");
    let output = train(
        &photos,
        ["--registry", registry.to_str().unwrap()],
        &mlflow.url,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("MLflow model starcast-actors version 1 (v1) is @champion"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
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

    let names = artifact_names(&api, run_id);
    for name in ["config.json", "metrics.json", "training.json", "curves.svg"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }

    let champion = get(&format!(
        "{api}/registered-models/alias?name=starcast-actors&alias=champion"
    ));
    assert_eq!(champion["model_version"]["run_id"], run_id);
    assert_eq!(
        champion["model_version"]["source"],
        format!("runs:/{run_id}/")
    );
}

#[test]
fn an_unreachable_tracking_server_fails_the_command_but_keeps_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    photo_dataset(&photos, &[("cat", "chelsea.png"), ("coffee", "coffee.png")]);
    let out = dir.path().join("model");
    let out = ["--out", out.to_str().unwrap()];
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = train(&photos, out, &format!("http://127.0.0.1:{closed}"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the model is saved in"), "{stderr}");
    assert!(stderr.contains("MLflow"), "{stderr}");
    assert!(Path::new(out[1]).join("model.safetensors").is_file());
}

/// `starcast models ...` on a folder registry, mirrored in `mlflow`.
fn models(registry: &Path, mlflow: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .arg("models")
        .args(args)
        .arg("--registry")
        .arg(registry)
        .args(["--mlflow", mlflow])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "models {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Which MLflow version each alias of `starcast-actors` points at.
fn aliases(api: &str) -> (Value, Value) {
    let alias = |name: &str| {
        ureq::get(&format!(
            "{api}/registered-models/alias?name=starcast-actors&alias={name}"
        ))
        .call()
        .ok()
        .map(|answer| answer.into_json::<Value>().unwrap()["model_version"]["version"].clone())
        .unwrap_or(Value::Null)
    };
    (alias("champion"), alias("challenger"))
}

#[test]
fn promotion_and_rollback_move_the_champion_alias_in_mlflow() {
    let mlflow = start_mlflow();
    let api = format!("{}/api/2.0/mlflow", mlflow.url);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    for (name, labels) in [("first", "Ada"), ("second", "Dan")] {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("model.safetensors"),
            common::three_class_safetensors(),
        )
        .unwrap();
        let config = common::THREE_CLASS_CONFIG.replace("Ada", labels);
        std::fs::write(folder.join("config.json"), config).unwrap();
    }
    let first = dir.path().join("first");
    let said = models(
        &registry,
        &mlflow.url,
        &["add", first.to_str().unwrap(), "--promote"],
    );
    assert!(said.contains("version 1 (v1) is @champion"), "{said}");
    let second = dir.path().join("second");
    let said = models(&registry, &mlflow.url, &["add", second.to_str().unwrap()]);
    assert!(said.contains("version 2 (v2) is @challenger"), "{said}");
    assert_eq!(aliases(&api), (json!("1"), json!("2")));

    models(&registry, &mlflow.url, &["promote", "v2"]);
    assert_eq!(
        aliases(&api),
        (json!("2"), Value::Null),
        "the challenger won"
    );
    models(&registry, &mlflow.url, &["rollback"]);
    assert_eq!(aliases(&api), (json!("1"), Value::Null), "rolled back");

    // Each MLflow version names its Starcast version and holds its files.
    let version = get(&format!(
        "{api}/model-versions/get?name=starcast-actors&version=2"
    ));
    let tags = &version["model_version"]["tags"];
    assert_eq!(tags[0]["key"], "starcast_version");
    assert_eq!(tags[0]["value"], "v2");
    let run_id = version["model_version"]["run_id"].as_str().unwrap();
    let names = artifact_names(&api, run_id);
    for name in ["lineage.json", "config.json"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}
