//! Model uploads by an admin: refused without the token, refused with a
//! sentence when the file is not a servable model or its check in a child
//! process runs out of memory (the served one stays), served at once when
//! it is. `hot_swap.rs` does the same under load.

mod common;

use std::sync::Arc;

use axum::http::{StatusCode, header};
use common::{
    ADMIN_TOKEN, ColourRecognizer, Multipart, TestServer, png, server, server_with_admin,
    server_with_checked_uploads, text,
};
use starcast_model::{Models, ServedModels};

const UPLOAD: &str = "/api/admin/actors/model";

fn colours() -> ServedModels {
    Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    }
    .into()
}

async fn upload(
    server: &TestServer,
    form: Multipart,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = form.request(UPLOAD);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let response = server.send(request).await;
    let status = response.status();
    (status, serde_json::from_str(&text(response).await).unwrap())
}

fn weights(file_name: &str, bytes: &[u8]) -> Multipart {
    Multipart::default().file("weights", file_name, bytes)
}

async fn served_names(server: &TestServer) -> String {
    server.get("/api/models").await.1
}

fn uploaded_folders(server: &TestServer) -> usize {
    std::fs::read_dir(server.data.path().join("models/uploads"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn uploads_are_off_without_a_configured_token() {
    let server = server(colours()).await;
    let (status, json) = upload(&server, weights("model.pth", b"x"), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("STARCAST_ADMIN_TOKEN"),
        "{json}"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused() {
    let server = server_with_admin(colours()).await;
    for token in [
        None,
        Some("guess"),
        Some("test-admin-tokem"),
        Some("test-admin-token-0123456789abcdeg"),
    ] {
        let (status, json) = upload(&server, weights("model.pth", b"x"), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {json}");
        assert!(json["error"].as_str().unwrap().contains("Bearer"));
    }
    assert_eq!(uploaded_folders(&server), 0);
}

#[test]
fn a_short_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = starcast_pipeline::ModelUploads::new(dir.path());
    let err = starcast_server::Admin::new("hunter2", uploads)
        .err()
        .unwrap();
    assert!(err.to_string().contains("at least 32"), "{err}");
}

#[tokio::test]
async fn files_that_are_not_models_are_refused_and_the_served_model_stays() {
    let server = server_with_admin(colours()).await;
    let hostile = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "model.pth",
            b"these are not tensors",
            "neither a zip nor a legacy PyTorch file",
        ),
        ("model.pth", hostile, "nothing in it was run"),
        (
            "model.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}",
            "not a safetensors file",
        ),
        (
            "photo.png",
            &png(4, 4, [1, 2, 3]),
            "not a weights file name",
        ),
        ("model.pth", b"", "empty"),
    ];
    for (file_name, bytes, expected) in cases {
        let (status, json) = upload(&server, weights(file_name, bytes), Some(ADMIN_TOKEN)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{file_name}: {json}"
        );
        let error = json["error"].as_str().unwrap();
        assert!(error.contains(expected), "{file_name}: {error}");
    }
    assert!(served_names(&server).await.contains("colours"));
    assert_eq!(
        uploaded_folders(&server),
        0,
        "rejected uploads leave nothing behind"
    );
    let (status, json) = upload(
        &server,
        Multipart::default().text("labels", "a,b"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json["error"].as_str().unwrap().contains("weights"),
        "{json}"
    );
}

#[tokio::test]
async fn a_real_pth_is_served_at_once() {
    let pth = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/models/mobilenet-v2-imagenet/model.pth");
    let bytes = std::fs::read(&pth)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-defaults.sh data", pth.display()));
    let server = server_with_admin(colours()).await;
    let (status, json) = upload(
        &server,
        weights("mobilenet_v2.pth", &bytes),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["architecture"], "mobilenet_v2");
    assert_eq!(json["labels"].as_array().unwrap().len(), 1000);
    let served = served_names(&server).await;
    assert!(
        served.contains("mobilenet_v2") && !served.contains("colours"),
        "{served}"
    );
    let form = Multipart::default().file("image", "grey.png", &png(64, 48, [128, 128, 128]));
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["predictions"].as_array().unwrap().len(), 10);
    assert!(
        json["model"]
            .as_str()
            .unwrap()
            .starts_with("uploaded classifier"),
        "{json}"
    );
    assert_eq!(uploaded_folders(&server), 1);
}

#[tokio::test]
async fn an_upload_whose_check_runs_out_of_memory_is_refused_and_the_served_model_stays() {
    let pth = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/models/mobilenet-v2-imagenet/model.pth");
    let bytes = std::fs::read(&pth)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-defaults.sh data", pth.display()));
    // Far less than loading a 14 MB MobileNetV2 takes.
    let server = server_with_checked_uploads(colours(), 32 << 20).await;
    let (status, json) = upload(
        &server,
        weights("mobilenet_v2.pth", &bytes),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert!(status.is_client_error(), "{status}: {json}");
    assert!(!json["error"].as_str().unwrap().is_empty(), "{json}");
    assert!(served_names(&server).await.contains("colours"));
    assert_eq!(uploaded_folders(&server), 0);
}
