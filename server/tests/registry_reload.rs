//! A version promoted in the registry while clients keep asking is served
//! from the next check on, over real TCP: no request fails, and answers
//! switch from the old model to the new one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use candle_core::Device;
use common::{
    ColourRecognizer, Multipart, THREE_CLASS_CONFIG, join_within, over_tcp, png, register_version,
    server, three_class_safetensors,
};
use starcast_model::{ActorRecognizer, Models};
use starcast_pipeline::registry::{Registry, Task};
use starcast_server::reload::follow_registry;
use tokio::net::TcpListener;

const CLIENTS: usize = 4;

/// Registers the three-class model (labels Ada, Bea, Cleo) as a version.
fn register(registry: &Registry) -> String {
    let files = [
        ("model.safetensors", three_class_safetensors()),
        ("config.json", THREE_CLASS_CONFIG.into()),
    ];
    register_version(registry, &files, "sha256:0").id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_version_is_served_without_a_restart_or_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path());
    let models: starcast_model::ServedModels = Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    }
    .into();
    let server = server(models.clone()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, server.app()).into_future());
    tokio::spawn(follow_registry(
        registry.clone(),
        models,
        None,
        Duration::from_millis(50),
        Device::Cpu,
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let (old, new) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (stop, old, new) = (stop.clone(), old.clone(), new.clone());
        clients.spawn(async move {
            let photo = png(64, 48, [200, 30, 30]);
            while !stop.load(Ordering::Relaxed) {
                let form = Multipart::default().file("image", "red.png", &photo);
                let response = over_tcp(address, form.raw("/api/actors/predict", "")).await;
                assert!(response.starts_with("HTTP/1.1 200"), "{response}");
                if response.contains(r#""label":"Cleo""#) {
                    new.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert!(response.contains(r#""label":"red""#), "{response}");
                    old.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    let lookup = registry.clone();
    let version = tokio::task::spawn_blocking(move || {
        let id = register(&lookup);
        lookup.promote(Task::Actors, &id, "test").unwrap();
        id
    })
    .await
    .unwrap();
    let mut served = false;
    for _ in 0..200 {
        let (status, body) = server.get("/api/models").await;
        assert_eq!(status, 200);
        if body.contains(&format!(r#""version":"{version}""#)) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the promoted version was never served");
    let swapped_at = new.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    join_within(clients, Duration::from_secs(60)).await;
    assert!(
        old.load(Ordering::Relaxed) > 0,
        "no answer before the promotion"
    );
    assert!(
        new.load(Ordering::Relaxed) > swapped_at,
        "no answer from the promoted version"
    );
}

#[tokio::test]
async fn a_promoted_version_that_does_not_load_leaves_the_served_model_alone() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path());
    let models: starcast_model::ServedModels = Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    }
    .into();
    let files = [
        ("model.safetensors", b"not safetensors".to_vec()),
        (
            "config.json",
            br#"{"task": "image-classification", "architecture": "resnet18", "labels": ["a"]}"#
                .to_vec(),
        ),
    ];
    let id = register_version(&registry, &files, "sha256:0").id;
    registry.promote(Task::Actors, &id, "test").unwrap();
    let watcher = tokio::spawn(follow_registry(
        registry,
        models.clone(),
        None,
        Duration::from_millis(20),
        Device::Cpu,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.abort();
    assert_eq!(
        models.actors().unwrap().info().name,
        ColourRecognizer::new().info().name
    );
}

/// Waits until the served actor model says it is `version`.
async fn until_serving(models: &starcast_model::ServedModels, version: &str) {
    for _ in 0..200 {
        if models.actors().is_some_and(|m| m.info().version == version) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{version} was never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_serves_the_replaced_model_kept_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path());
    let models: starcast_model::ServedModels = Models::default().into();
    let first = register(&registry);
    let second = register(&registry);
    let watcher = tokio::spawn(follow_registry(
        registry.clone(),
        models.clone(),
        None,
        Duration::from_millis(20),
        Device::Cpu,
    ));
    registry.promote(Task::Actors, &first, "first").unwrap();
    until_serving(&models, &first).await;
    registry.promote(Task::Actors, &second, "second").unwrap();
    until_serving(&models, &second).await;
    // The first version's weights can no longer be loaded from disk: only
    // the copy kept in memory can serve the rollback.
    let weights = registry
        .version(Task::Actors, &first)
        .unwrap()
        .path
        .join("model.safetensors");
    std::fs::write(weights, b"damaged").unwrap();
    registry.rollback(Task::Actors, "bad outputs").unwrap();
    until_serving(&models, &first).await;
    watcher.abort();
}
