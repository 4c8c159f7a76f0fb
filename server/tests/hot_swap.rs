//! A model uploaded while clients keep asking is served from the next
//! request on, over real TCP on a multi-threaded runtime: no request fails,
//! and answers switch from the old model to the new one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    ADMIN_TOKEN, ColourRecognizer, Multipart, join_within, over_tcp, png, server_with_admin,
    three_class_safetensors,
};
use starcast_model::Models;
use tokio::net::TcpListener;

const CLIENTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_is_served_at_once_without_a_failed_request() {
    let models = Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    };
    let server = server_with_admin(models.into()).await;
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
