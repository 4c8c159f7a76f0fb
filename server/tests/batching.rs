//! Photos that arrive together share one forward pass of the classifier,
//! and each gets the answer it gets alone, to the bit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Multipart, serve_over_tcp, server_with_limits};
use starcast_model::vision::{ClassifierOptions, ImageClassifier};
use starcast_model::{Models, ServedModels};
use starcast_server::Limits;

fn imagenet() -> ServedModels {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/models/mobilenet-v2-imagenet");
    let classifier = ImageClassifier::load(&folder, &ClassifierOptions::default())
        .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-defaults.sh data"));
    Models {
        actors: Some(Arc::new(classifier)),
        ..Default::default()
    }
    .into()
}

fn photos() -> Vec<(String, Vec<u8>)> {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/samples");
    ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
        .into_iter()
        .map(|name| (name.to_string(), std::fs::read(samples.join(name)).unwrap()))
        .collect()
}

/// `(status, body)` of one photo sent over TCP, on a connection of its own.
async fn predict(
    address: std::net::SocketAddr,
    name: &str,
    bytes: &[u8],
) -> (u16, serde_json::Value) {
    let form = Multipart::default().file("image", name, bytes);
    let response = common::over_tcp(
        address,
        form.raw("/api/actors/predict", "Connection: close\r\n"),
    )
    .await;
    let status = response[9..12].parse().unwrap();
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// The photo_batch_size histogram: (forward passes, of them with one photo).
async fn batches(address: std::net::SocketAddr) -> (u64, u64) {
    let metrics = common::over_tcp(
        address,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    };
    (
        value("starcast_photo_batch_size_count "),
        value("starcast_photo_batch_size_bucket{le=\"1.0\"} "),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn photos_sent_together_share_a_forward_pass_and_answer_as_alone() {
    let limits = Limits {
        // Long enough for all of them to be gathered on a slow machine.
        batch_wait: Duration::from_millis(500),
        ..Limits::default()
    };
    let server = server_with_limits(imagenet(), limits).await;
    let address = serve_over_tcp(server.state.clone()).await;
    let photos = photos();

    let mut alone = Vec::new();
    for (name, bytes) in &photos {
        let (status, json) = predict(address, name, bytes).await;
        assert_eq!(status, 200, "{name}: {json}");
        alone.push(json["predictions"].clone());
    }
    let (passes, single) = batches(address).await;
    assert_eq!((passes, single), (4, 4), "one at a time, each alone");

    // Each photo twice, and a damaged one among them, all at once.
    let mut clients = tokio::task::JoinSet::new();
    for round in 0..2 {
        for (i, (name, bytes)) in photos.iter().enumerate() {
            let (name, bytes) = (name.clone(), bytes.clone());
            clients.spawn(async move { (Some(i), round, predict(address, &name, &bytes).await) });
        }
    }
    let mut damaged = photos[0].1.clone();
    damaged.truncate(2000);
    clients.spawn(async move { (None, 0, predict(address, "broken.png", &damaged).await) });
    let answers = tokio::time::timeout(Duration::from_secs(120), clients.join_all())
        .await
        .expect("the batch answered");
    for (photo, round, (status, json)) in answers {
        match photo {
            Some(i) => {
                assert_eq!(status, 200, "{} round {round}: {json}", photos[i].0);
                assert_eq!(
                    json["predictions"], alone[i],
                    "{} round {round}",
                    photos[i].0
                );
            }
            None => {
                assert_eq!(status, 422, "the damaged photo: {json}");
                assert!(
                    json["error"].as_str().unwrap().contains("damaged"),
                    "{json}"
                );
            }
        }
    }
    let (passes, single) = batches(address).await;
    assert!(
        passes - single >= 1 && passes < 4 + 8,
        "8 photos at once took {} passes, {} of one photo",
        passes - 4,
        single - 4
    );
}
