//! `collect photos` against a DuckDuckGo-shaped search, a Wikimedia
//! Commons-shaped API and an image host, all on loopback: new photos are
//! stored under their content hash with a manifest, bad and failing
//! downloads are skipped, duplicates by content are stored once, and a
//! rerun adds only what is new.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{loopback_listener, serve_in_background};
use serde_json::json;

#[derive(Clone)]
struct Web {
    base: String,
    image_requests: Arc<AtomicUsize>,
}

fn png(shade: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([shade, (x * 4) as u8, (y * 5) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

async fn duck_page(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    assert_eq!(q.get("q").map(String::as_str), Some("Ada Lovelace"));
    "<html><script>vqd=\"4-1234567890_abc\";</script></html>".into_response()
}

async fn duck_results(
    State(web): State<Web>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    assert_eq!(q.get("vqd").map(String::as_str), Some("4-1234567890_abc"));
    let base = &web.base;
    axum::Json(json!({"results": [
        {"image": format!("{base}/img/1.png"), "url": format!("{base}/page/1"), "title": "one"},
        {"image": format!("{base}/img/2.png"), "url": format!("{base}/page/2"), "title": "two"},
        {"image": format!("{base}/img/not-an-image"), "url": format!("{base}/page/3"), "title": "html"},
        {"image": format!("{base}/img/broken"), "url": format!("{base}/page/4"), "title": "500"},
        {"image": format!("{base}/img/1-again.png"), "url": format!("{base}/page/5"), "title": "same bytes"},
    ]}))
    .into_response()
}

async fn commons(
    State(web): State<Web>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    assert_eq!(q.get("generator").map(String::as_str), Some("search"));
    let base = &web.base;
    axum::Json(json!({"query": {"pages": {
        "-1": {"index": 1, "title": "File:Ada.png", "imageinfo": [{
            "url": format!("{base}/img/3.png"), "descriptionurl": format!("{base}/wiki/File:Ada.png"), "mime": "image/png",
            "extmetadata": {"LicenseShortName": {"value": "Public domain"}}}]},
        "-2": {"index": 2, "title": "File:Ada2.png", "imageinfo": [{
            "url": format!("{base}/img/4.png"), "descriptionurl": format!("{base}/wiki/File:Ada2.png"), "mime": "image/png",
            "extmetadata": {"LicenseShortName": {"value": "CC BY-SA 4.0"}}}]}
    }}}))
    .into_response()
}

async fn image(State(web): State<Web>, Path(name): Path<String>) -> Response {
    web.image_requests.fetch_add(1, Ordering::Relaxed);
    match name.as_str() {
        "1.png" | "1-again.png" => ([(header::CONTENT_TYPE, "image/png")], png(10)).into_response(),
        "2.png" => ([(header::CONTENT_TYPE, "image/png")], png(80)).into_response(),
        "3.png" => ([(header::CONTENT_TYPE, "image/png")], png(160)).into_response(),
        "4.png" => ([(header::CONTENT_TYPE, "image/png")], png(240)).into_response(),
        "not-an-image" => "<html>a page, not a photo</html>".into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn start_web() -> Web {
    let (listener, base) = loopback_listener();
    let web = Web {
        base,
        image_requests: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/", get(duck_page))
        .route("/i.js", get(duck_results))
        .route("/w/api.php", get(commons))
        .route("/img/{name}", get(image))
        .with_state(web.clone());
    serve_in_background(listener, app);
    web
}

fn collect(web: &Web, out: &std::path::Path, count: usize) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args([
            "collect",
            "photos",
            "--actor",
            "Ada Lovelace",
            "--count",
            &count.to_string(),
        ])
        .arg("--out")
        .arg(out)
        .env("STARCAST_DUCKDUCKGO_URL", &web.base)
        .env("STARCAST_WIKIMEDIA_URL", format!("{}/w/api.php", web.base))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn photos_are_collected_once_with_their_source_and_licence() {
    let web = start_web();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("Ada Lovelace");

    let first = collect(&web, dir.path(), 3);
    assert!(
        first.contains("7 found") && first.contains("3 added"),
        "{first}"
    );
    let photos = |folder: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".png"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(photos(&folder).len(), 3);

    let second = collect(&web, dir.path(), 10);
    assert!(
        second.contains("skipped") && second.contains("answered 500"),
        "{second}"
    );
    assert!(
        second.contains("not an image this app can read"),
        "{second}"
    );
    let stored = photos(&folder);
    assert_eq!(
        stored.len(),
        4,
        "four different photos, the repeated bytes stored once: {stored:?}"
    );
    assert!(
        stored.iter().all(|n| n.len() == 16 + 4),
        "named by content hash: {stored:?}"
    );

    let manifest: Vec<csv::StringRecord> = csv::Reader::from_path(folder.join("manifest.csv"))
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(manifest.len(), 4);
    let licences: Vec<&str> = manifest.iter().map(|r| &r[4]).collect();
    assert!(
        licences.contains(&"CC BY-SA 4.0") && licences.contains(&"Public domain"),
        "{licences:?}"
    );
    assert!(manifest.iter().all(|r| stored.contains(&r[0].to_string())));

    let requests = web.image_requests.load(Ordering::Relaxed);
    let third = collect(&web, dir.path(), 10);
    assert!(third.contains("0 added"), "{third}");
    assert_eq!(photos(&folder).len(), 4);
    // Only the URLs that gave no new photo are tried again: the page, the
    // failing one (three tries) and the repeated bytes.
    assert_eq!(web.image_requests.load(Ordering::Relaxed) - requests, 5);
}
