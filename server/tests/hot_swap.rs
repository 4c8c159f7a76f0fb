//! A model uploaded while clients keep asking is served from the next
//! request on, over real TCP on a multi-threaded runtime: no request fails,
//! and answers switch from the old model to the new one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use candle_core::{Device, Tensor};
use common::{
    ADMIN_TOKEN, ColourRecognizer, Multipart, join_within, over_tcp, png, server_with_admin,
};
use starcast_model::Models;
use starcast_model::vision::read_weights;
use tokio::net::TcpListener;

const CLIENTS: usize = 6;

/// MobileNetV2's ImageNet features with a new 3-class head whose weights
/// are zero and biases 0, 1, 2: every photo is "Cleo" first.
fn three_class_safetensors() -> Vec<u8> {
    let pth = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/models/mobilenet-v2-imagenet/model.pth");
    let mut tensors =
        read_weights(&pth).unwrap_or_else(|e| panic!("{e}: run scripts/fetch-defaults.sh data"));
    let head = Tensor::zeros((3, 1280), candle_core::DType::F32, &Device::Cpu).unwrap();
    let bias = Tensor::new(&[0f32, 1.0, 2.0], &Device::Cpu).unwrap();
    tensors.insert("classifier.1.weight".into(), head);
    tensors.insert("classifier.1.bias".into(), bias);
    let file = tempfile::NamedTempFile::new().unwrap();
    candle_core::safetensors::save(&tensors, file.path()).unwrap();
    std::fs::read(file.path()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_is_served_at_once_without_a_failed_request() {
    let models = Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    };
    let server = server_with_admin(models.into());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, server.app()).into_future());

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
    let weights = tokio::task::spawn_blocking(three_class_safetensors)
        .await
        .unwrap();
    let form = Multipart::default()
        .file("weights", "actors.safetensors", &weights)
        .text("labels", "Ada\nBea\nCleo");
    let authorization = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let response = over_tcp(address, form.raw("/api/admin/actors/model", &authorization)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#""labels":["Ada","Bea","Cleo"]"#),
        "{response}"
    );
    let swapped_at = new.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    join_within(clients, Duration::from_secs(60)).await;

    assert!(
        old.load(Ordering::Relaxed) > 0,
        "no answer came before the upload"
    );
    assert!(
        new.load(Ordering::Relaxed) > swapped_at,
        "no answer came from the new model"
    );
}
