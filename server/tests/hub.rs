//! `hf://user/repo` through hf-hub against a Hub on loopback that serves a
//! repo's files the way the Hub does (revision info, `resolve/` with ETag,
//! X-Repo-Commit and byte ranges): the real CLI fetches the model into
//! HF_HOME and answers with it; a second run works from the cache. The same
//! Hub takes pushes the way the Hub's upload API does (repo creation,
//! pre-upload modes, the LFS batch API, NDJSON commits), so a trained
//! version pushed by `starcast models push` is then served from it, and a
//! LoRA adapter is pushed naming its base model by its Hub repo.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use common::{
    THREE_CLASS_CONFIG, loopback_listener, register_version, register_version_of,
    serve_in_background, three_class_safetensors,
};
use starcast_model::text::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig};
use starcast_pipeline::registry::Task;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

type Files = BTreeMap<String, Vec<u8>>;

const WRITE_TOKEN: &str = "hf_test_write";

#[derive(Clone)]
struct Hub {
    /// Files by repo (`user/name`), then by path.
    repos: Arc<Mutex<BTreeMap<String, Files>>>,
    /// LFS objects by SHA-256, uploaded before the commit that names them.
    lfs: Arc<Mutex<Files>>,
    downloads: Arc<AtomicUsize>,
}

async fn revision(
    State(hub): State<Hub>,
    Path((user, repo, _)): Path<(String, String, String)>,
) -> Response {
    let repos = hub.repos.lock().unwrap();
    let Some(files) = repos.get(&format!("{user}/{repo}")) else {
        return (StatusCode::NOT_FOUND, "Repository not found").into_response();
    };
    let siblings: Vec<_> = files
        .keys()
        .map(|f| serde_json::json!({ "rfilename": f }))
        .collect();
    axum::Json(serde_json::json!({ "sha": COMMIT, "siblings": siblings })).into_response()
}

async fn resolve(
    State(hub): State<Hub>,
    Path((user, repo, _, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let repos = hub.repos.lock().unwrap();
    let Some(bytes) = repos
        .get(&format!("{user}/{repo}"))
        .and_then(|files| files.get(&file))
    else {
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

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {WRITE_TOKEN}"))
}

async fn create_repo(State(hub): State<Hub>, headers: HeaderMap, body: String) -> Response {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, "Invalid credentials").into_response();
    }
    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(request["type"], "model");
    let id = format!(
        "{}/{}",
        request["organization"].as_str().unwrap(),
        request["name"].as_str().unwrap()
    );
    let mut repos = hub.repos.lock().unwrap();
    if repos.contains_key(&id) {
        return (StatusCode::CONFLICT, "You already created this model repo").into_response();
    }
    repos.insert(id.clone(), Files::new());
    axum::Json(serde_json::json!({ "url": format!("/{id}") })).into_response()
}

/// Files over 1 KB go through LFS, as the Hub sends large and binary files.
async fn preupload(headers: HeaderMap, body: String) -> Response {
    assert!(authorised(&headers));
    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
    let files: Vec<_> = request["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let mode = if f["size"].as_u64().unwrap() > 1024 {
                "lfs"
            } else {
                "regular"
            };
            serde_json::json!({ "path": f["path"], "uploadMode": mode, "shouldIgnore": false })
        })
        .collect();
    axum::Json(serde_json::json!({ "files": files })).into_response()
}

async fn lfs_batch(headers: HeaderMap, body: String) -> Response {
    assert!(authorised(&headers));
    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(request["operation"], "upload");
    let host = headers.get(header::HOST).unwrap().to_str().unwrap();
    let objects: Vec<_> = request["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let href = format!("http://{host}/lfs-storage/{}", o["oid"].as_str().unwrap());
            serde_json::json!({ "oid": o["oid"], "size": o["size"], "actions": { "upload": { "href": href } } })
        })
        .collect();
    axum::Json(serde_json::json!({ "transfer": "basic", "objects": objects })).into_response()
}

async fn lfs_store(
    State(hub): State<Hub>,
    Path(oid): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, oid, "the object's content matches its name");
    hub.lfs.lock().unwrap().insert(oid, body.to_vec());
    StatusCode::OK
}

async fn commit(
    State(hub): State<Hub>,
    Path((user, repo, _)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    assert!(authorised(&headers));
    let id = format!("{user}/{repo}");
    let lfs = hub.lfs.lock().unwrap();
    let mut repos = hub.repos.lock().unwrap();
    let files = repos.get_mut(&id).expect("the repo was created first");
    for line in body.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let value = &entry["value"];
        let path = value["path"].as_str().map(String::from);
        match entry["key"].as_str().unwrap() {
            "header" => assert!(value["summary"].as_str().unwrap().starts_with("starcast")),
            "file" => {
                let content = base64::engine::general_purpose::STANDARD
                    .decode(value["content"].as_str().unwrap())
                    .unwrap();
                files.insert(path.unwrap(), content);
            }
            "lfsFile" => {
                let Some(content) = lfs.get(value["oid"].as_str().unwrap()) else {
                    return (StatusCode::BAD_REQUEST, "LFS object not uploaded").into_response();
                };
                files.insert(path.unwrap(), content.clone());
            }
            other => panic!("unexpected commit entry {other}"),
        }
    }
    axum::Json(
        serde_json::json!({ "commitUrl": format!("/{id}/commit/{COMMIT}"), "commitOid": COMMIT }),
    )
    .into_response()
}

fn start_hub(repos: BTreeMap<String, Files>) -> (String, Hub) {
    let hub = Hub {
        repos: Arc::new(Mutex::new(repos)),
        lfs: Arc::default(),
        downloads: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/api/models/{user}/{repo}/revision/{rev}", get(revision))
        .route("/{user}/{repo}/resolve/{rev}/{*file}", get(resolve))
        .route("/api/repos/create", post(create_repo))
        .route("/api/models/{user}/{repo}/preupload/{rev}", post(preupload))
        .route("/{user}/{repo_git}/info/lfs/objects/batch", post(lfs_batch))
        .route("/lfs-storage/{oid}", put(lfs_store))
        .route("/api/models/{user}/{repo}/commit/{rev}", post(commit))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
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
    let (endpoint, hub) = start_hub(BTreeMap::from([("ada/actors".to_string(), files)]));
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

#[test]
fn a_registered_version_is_pushed_and_then_served_from_the_hub() {
    let (endpoint, hub) = start_hub(BTreeMap::new());
    let dir = tempfile::tempdir().unwrap();
    let registry = starcast_pipeline::registry::Registry::new(dir.path().join("registry"));
    let version = register_version(
        &registry,
        &[
            ("model.safetensors", three_class_safetensors()),
            ("config.json", THREE_CLASS_CONFIG.into()),
        ],
        "sha256:0",
    );
    let push = |token: Option<&str>, repo: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_starcast"));
        command
            .args(["models", "push", &version.id, "--repo", repo, "--registry"])
            .arg(registry.to_string())
            .env("HF_ENDPOINT", &endpoint)
            .env_remove("HF_TOKEN");
        if let Some(token) = token {
            command.env("HF_TOKEN", token);
        }
        command.output().unwrap()
    };
    let no_token = push(None, "ada/pushed");
    assert!(!no_token.status.success());
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("HF_TOKEN"));
    let wrong = push(Some("hf_wrong"), "ada/pushed");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("status 401"));
    let bad_name = push(Some(WRITE_TOKEN), "pushed");
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("user/name"));

    let pushed = push(Some(WRITE_TOKEN), "ada/pushed");
    let stdout = String::from_utf8_lossy(&pushed.stdout);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(
        stdout.contains("pushed actors v1 to ada/pushed"),
        "{stdout}"
    );
    let again = push(Some(WRITE_TOKEN), "ada/pushed");
    assert!(
        again.status.success(),
        "pushing to an existing repo is a new commit"
    );
    let card =
        String::from_utf8(hub.repos.lock().unwrap()["ada/pushed"]["README.md"].clone()).unwrap();
    assert!(card.starts_with("---\nlibrary_name: starcast\n"), "{card}");
    assert!(
        card.contains("pipeline_tag: image-classification\n"),
        "{card}"
    );
    assert!(card.contains("license: \"other\"\n"), "{card}");
    assert!(card.contains("In class order: Ada, Bea, Cleo."), "{card}");
    assert!(
        card.contains("starcast serve --actors-model hf://ada/pushed"),
        "{card}"
    );

    let home = tempfile::tempdir().unwrap();
    let served = predict(&endpoint, home.path(), "hf://ada/pushed");
    let stdout = String::from_utf8_lossy(&served.stdout);
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(
        stdout.contains(r#""predictions":[{"label":"Cleo""#),
        "{stdout}"
    );
}

#[test]
fn a_lora_adapter_is_pushed_naming_its_base_by_its_hub_repo() {
    let (endpoint, hub) = start_hub(BTreeMap::new());
    let dir = tempfile::tempdir().unwrap();
    let registry = starcast_pipeline::registry::Registry::new(dir.path().join("registry"));
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/models/smollm2-135m-instruct")
        .canonicalize()
        .unwrap();
    // As `starcast train horoscope` writes it: the base by its local path.
    let config = AdapterConfig::new(base.display().to_string(), 8, 16.0, &["q_proj", "v_proj"]);
    let version = register_version_of(
        Task::Horoscope,
        &registry,
        &[
            (ADAPTER_CONFIG, serde_json::to_vec(&config).unwrap()),
            (ADAPTER_WEIGHTS, b"adapters".to_vec()),
            (
                "config.json",
                br#"{"task": "text-generation", "architecture": "llama"}"#.to_vec(),
            ),
        ],
        "sha256:0",
    );
    let push = |base_repo: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_starcast"));
        command
            .args(["models", "push", &version.id, "--task", "horoscope"])
            .args(["--repo", "ada/house-style", "--registry"])
            .arg(registry.to_string())
            .env("HF_ENDPOINT", &endpoint)
            .env("HF_TOKEN", WRITE_TOKEN);
        if let Some(repo) = base_repo {
            command.args(["--base-repo", repo]);
        }
        command.output().unwrap()
    };

    let refused = push(None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--base-repo"), "{stderr}");
    assert!(
        !hub.repos.lock().unwrap().contains_key("ada/house-style"),
        "nothing is pushed"
    );

    let pushed = push(Some("HuggingFaceTB/SmolLM2-135M-Instruct"));
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let repos = hub.repos.lock().unwrap();
    let files = &repos["ada/house-style"];
    let on_hub: AdapterConfig = serde_json::from_slice(&files[ADAPTER_CONFIG]).unwrap();
    assert_eq!(
        on_hub.base_model_name_or_path,
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    );
    assert_eq!(on_hub.target_modules, config.target_modules);
    assert_eq!(files[ADAPTER_WEIGHTS], b"adapters");
    let card = String::from_utf8(files["README.md"].clone()).unwrap();
    assert!(card.starts_with("---\nlibrary_name: peft\n"), "{card}");
    assert!(
        card.contains("base_model: \"HuggingFaceTB/SmolLM2-135M-Instruct\"\n"),
        "{card}"
    );
    assert!(card.contains("pipeline_tag: text-generation\n"), "{card}");
    let kept: AdapterConfig =
        serde_json::from_slice(&std::fs::read(version.path.join(ADAPTER_CONFIG)).unwrap()).unwrap();
    assert_eq!(kept, config, "the registry's copy is left as it was");
}
