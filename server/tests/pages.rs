//! The server-rendered pages and the static files around them.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{ColourRecognizer, server};
use starcast_model::{Models, ServedModels, ZodiacSign};

#[tokio::test]
async fn the_actors_page_renders_with_its_hydration_scripts() {
    let server = server(ServedModels::default()).await;
    let (status, html) = server.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("Who is in this photo?"));
    assert!(html.contains(r#"id="photo-input""#));
    assert!(
        html.contains("/pkg/starcast.js"),
        "no hydration script: {html}"
    );
    assert!(html.contains("starcast_bg.wasm"), "{html}");
    assert!(html.contains("<title>Actors · Starcast</title>"), "{html}");
}

#[tokio::test]
async fn the_horoscope_page_offers_all_twelve_signs_and_today() {
    let server = server(ServedModels::default()).await;
    let (status, html) = server.get("/horoscope").await;
    assert_eq!(status, StatusCode::OK);
    for sign in ZodiacSign::ALL {
        assert!(
            html.contains(&format!(r#"id="sign-{}""#, sign.key())),
            "{sign} missing"
        );
        assert!(html.contains(sign.glyph()), "{sign} glyph missing");
        assert!(html.contains(&sign.date_range()), "{sign} dates missing");
    }
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(html.contains(&today), "the date is not today's: {html}");
}

#[tokio::test]
async fn the_models_page_says_when_nothing_is_served_and_lists_what_is() {
    let (_, empty) = server(ServedModels::default()).await.get("/models").await;
    assert!(empty.contains("No model is loaded yet"), "{empty}");

    let served = Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    }
    .into();
    let (status, html) = server(served).await.get("/models").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("No model is loaded yet"));
    assert!(html.contains("colours"), "{html}");
    assert!(html.contains("red, green, blue"), "{html}");
    assert!(html.contains("accuracy"), "{html}");
}

/// The API page, as a visitor reaches it through the Space's proxy: every
/// endpoint, each with a request addressed to this server.
#[tokio::test]
async fn the_api_page_lists_each_endpoint_with_a_request_for_this_server() {
    let server = server(ServedModels::default()).await;
    let request = Request::get("/api/docs")
        .header(header::HOST, "someone-starcast.hf.space")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let response = server.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = common::text(response).await;
    assert!(html.contains("Use via API"), "{html}");
    for id in [
        "post-api-actors-predict",
        "post-api-horoscope",
        "get-api-horoscope-stream",
        "post-api-flags",
        "post-api-admin-actors-model",
        "get-healthz",
    ] {
        assert!(
            html.contains(&format!(r#"id="{id}""#)),
            "{id} is not listed"
        );
    }
    assert!(
        html.contains("https://someone-starcast.hf.space/api/actors/predict"),
        "the requests do not call this server: {html}"
    );
    assert!(html.contains("image=@photo.jpg"), "{html}");
    assert!(html.contains("href=\"/api/openapi.json\""), "{html}");
}

#[tokio::test]
async fn an_unknown_page_is_a_404_with_a_way_back() {
    let (status, html) = server(ServedModels::default())
        .await
        .get("/no-such-page")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"), "{html}");
}

#[tokio::test]
async fn static_files_and_example_photos_are_served() {
    let server = server(ServedModels::default()).await;
    let (status, svg) = server.get("/favicon.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(svg, "<svg/>");

    let examples = server.data.path().join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::write(examples.join("cat.png"), common::png(2, 2, [1, 1, 1])).unwrap();
    let (status, _) = server.get("/examples/cat.png").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get("/examples/../flags").await;
    assert_ne!(status, StatusCode::OK);
}
