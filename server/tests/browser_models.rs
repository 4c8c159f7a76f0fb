//! The served models' files for "Run in my browser": a real classifier
//! folder is listed with its files and fingerprinted address, each file
//! comes back as it is on disk, and nothing outside the listing (another
//! name, a stale fingerprint, a path out of the folder) is served.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{ColourRecognizer, THREE_CLASS_CONFIG, server, three_class_safetensors};
use starcast_api::BrowserModel;
use starcast_model::vision::ClassifierOptions;
use starcast_model::{Models, load_actor_recognizer};

#[tokio::test]
async fn a_served_folder_is_offered_file_by_file_and_nothing_else() {
    let folder = tempfile::tempdir().unwrap();
    let weights = three_class_safetensors();
    std::fs::write(folder.path().join("config.json"), THREE_CLASS_CONFIG).unwrap();
    std::fs::write(folder.path().join("model.safetensors"), &weights).unwrap();
    std::fs::write(folder.path().join(".hidden"), "not a model file").unwrap();
    let recognizer = load_actor_recognizer(folder.path(), &ClassifierOptions::default()).unwrap();
    let server = server(
        Models {
            actors: Some(recognizer),
            ..Default::default()
        }
        .into(),
    )
    .await;

    let (status, body) = server.get("/api/browser/models").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<BrowserModel> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    let model = &listed[0];
    let names: Vec<&str> = model.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["config.json", "model.safetensors"],
        "hidden files stay out"
    );
    assert_eq!(model.files[1].size, weights.len() as u64);
    assert!(
        model.base.starts_with("/api/browser/files/actors/"),
        "{}",
        model.base
    );

    let (status, served) = server.get(&format!("{}config.json", model.base)).await;
    assert_eq!(
        (status, served.as_str()),
        (StatusCode::OK, THREE_CLASS_CONFIG)
    );
    let response = server
        .send(
            axum::http::Request::get(format!("{}model.safetensors", model.base))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(bytes.len(), weights.len());
    assert!(bytes == weights, "the weights as they are on disk");

    for refused in [
        format!("{}.hidden", model.base),
        format!("{}labels.txt", model.base),
        format!("{}..%2Fconfig.json", model.base),
        "/api/browser/files/actors/0000000000000000/config.json".to_string(),
        "/api/browser/files/horoscope-en/0000000000000000/model.gguf".to_string(),
    ] {
        let (status, body) = server.get(&refused).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{refused}: {body}");
        assert!(body.contains("reload the page"), "{body}");
    }
}

#[tokio::test]
async fn a_model_built_in_memory_is_not_offered() {
    let server = server(
        Models {
            actors: Some(Arc::new(ColourRecognizer::new())),
            ..Default::default()
        }
        .into(),
    )
    .await;
    let (status, body) = server.get("/api/browser/models").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
}
