//! `hf://user/repo` through hf-hub against a Hub on loopback that serves a
//! repo's files the way the Hub does (revision info, `resolve/` with ETag,
//! X-Repo-Commit and byte ranges): the real CLI fetches the model into
//! HF_HOME and answers with it; a second run works from the cache.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{loopback_listener, serve_in_background, three_class_safetensors};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Clone)]
struct Hub {
    files: Arc<BTreeMap<String, Vec<u8>>>,
    downloads: Arc<AtomicUsize>,
}

async fn revision(
    State(hub): State<Hub>,
    Path((user, repo, _)): Path<(String, String, String)>,
) -> Response {
    if (user.as_str(), repo.as_str()) != ("ada", "actors") {
        return (StatusCode::NOT_FOUND, "Repository not found").into_response();
    }
    let siblings: Vec<_> = hub
        .files
        .keys()
        .map(|f| serde_json::json!({ "rfilename": f }))
        .collect();
    axum::Json(serde_json::json!({ "sha": COMMIT, "siblings": siblings })).into_response()
}

async fn resolve(
    State(hub): State<Hub>,
    Path((_, _, _, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(bytes) = hub.files.get(&file) else {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    };
    let size = bytes.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .map(|v| {
            let (start, end) = v.split_once('-').unwrap();
            let start: usize = start.parse().unwrap();
            let end = end.parse::<usize>().map_or(size - 1, |e| e.min(size - 1));
            (start, end)
        });
    let (start, end) = range.unwrap_or((0, size - 1));
    if end > start {
        hub.downloads.fetch_add(1, Ordering::Relaxed);
    }
    let etag = format!("\"{:x}-{size}\"", file.len());
    let mut response = (
        if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        },
        bytes[start..=end].to_vec(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.parse().unwrap());
    headers.insert("x-repo-commit", COMMIT.parse().unwrap());
    headers.insert(
        header::CONTENT_RANGE,
        format!("bytes {start}-{end}/{size}").parse().unwrap(),
    );
    response
}

fn start_hub(files: BTreeMap<String, Vec<u8>>) -> (String, Hub) {
    let hub = Hub {
        files: Arc::new(files),
        downloads: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/api/models/{user}/{repo}/revision/{rev}", get(revision))
        .route("/{user}/{repo}/resolve/{rev}/{*file}", get(resolve))
        .with_state(hub.clone());
    let (listener, base) = loopback_listener();
    serve_in_background(listener, app);
    (base, hub)
}

fn predict(endpoint: &str, home: &std::path::Path, model: &str) -> std::process::Output {
    let photo =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/samples/chelsea.png");
    Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(["predict", "actors", "--json", "--model", model])
        .arg(photo)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env_remove("HF_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn a_hub_model_is_fetched_cached_and_served() {
    let config = r#"{"task": "image-classification", "architecture": "mobilenet_v2", "name": "actors", "labels": ["Ada", "Bea", "Cleo"]}"#;
    let files = BTreeMap::from([
        ("config.json".to_string(), config.as_bytes().to_vec()),
        ("model.safetensors".to_string(), three_class_safetensors()),
        ("README.md".to_string(), b"# not downloaded".to_vec()),
    ]);
    let (endpoint, hub) = start_hub(files);
    let home = tempfile::tempdir().unwrap();

    let first = predict(&endpoint, home.path(), "hf://ada/actors");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains(r#""predictions":[{"label":"Cleo""#),
        "{stdout}"
    );
    assert_eq!(
        hub.downloads.load(Ordering::Relaxed),
        2,
        "config.json and the weights, not the README"
    );
    let snapshot = home
        .path()
        .join("hub/models--ada--actors/snapshots")
        .join(COMMIT);
    assert!(snapshot.join("model.safetensors").is_file());
    assert!(!snapshot.join("README.md").exists());

    let again = predict(&endpoint, home.path(), "hf://ada/actors@main");
    assert!(again.status.success());
    assert_eq!(
        hub.downloads.load(Ordering::Relaxed),
        2,
        "the second run reads the cache"
    );

    let missing = predict(&endpoint, home.path(), "hf://ada/nobody");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("could not fetch hf://ada/nobody@main from the Hugging Face Hub"),
        "{stderr}"
    );
    assert!(stderr.contains("HF_TOKEN"), "{stderr}");
}
