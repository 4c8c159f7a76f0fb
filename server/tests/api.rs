//! The REST API over real HTTP requests through the whole router.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{
    ColourRecognizer, EchoWriter, Multipart, PanickingRecognizer, flag_store, png, server,
    server_with_limits, text,
};
use http_body_util::BodyExt;
use serde_json::Value;
use starcast_model::{Language, Models, ServedModels};
use starcast_pipeline::flags::Quota;
use starcast_server::Limits;

fn with_actors() -> ServedModels {
    Models {
        actors: Some(Arc::new(ColourRecognizer::new())),
        ..Default::default()
    }
    .into()
}

fn with_writer(writer: EchoWriter) -> ServedModels {
    Models {
        horoscopes: vec![Arc::new(writer)],
        ..Default::default()
    }
    .into()
}

fn error_of(json: &Value) -> &str {
    json["error"].as_str().expect("an error sentence")
}

#[tokio::test]
async fn predicts_actors_with_scores_highest_first() {
    let server = server(with_actors()).await;
    let form = Multipart::default().file("image", "red.png", &png(32, 24, [250, 10, 10]));
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["predictions"][0]["label"], "red");
    let scores: Vec<f64> = json["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!((scores.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(32), Some(24))
    );
    assert_eq!(json["model"], "colours test");
    assert!(json["elapsed_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn without_a_model_the_photo_is_checked_and_nothing_is_guessed() {
    let server = server(ServedModels::default()).await;
    let form = Multipart::default().file("image", "a.png", &png(8, 8, [1, 2, 3]));
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error_of(&json).starts_with("No actor recognition model is loaded yet"),
        "{json}"
    );
    assert!(json.get("predictions").is_none());
    let form = Multipart::default().file("image", "notes.txt", b"these are not pixels");
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{json}");
    assert!(error_of(&json).contains("not an image"), "{json}");
}

#[tokio::test]
async fn bad_photos_get_a_sentence_and_the_right_status() {
    let server = server(with_actors()).await;
    let whole = png(64, 64, [9, 9, 9]);
    // A 54-byte BMP header claiming 30000x30000 pixels and carrying none.
    let mut huge = Vec::new();
    huge.extend_from_slice(b"BM");
    for v in [54u32 + 2_700_000_000, 0, 54, 40, 30_000, 30_000] {
        huge.extend_from_slice(&v.to_le_bytes());
    }
    huge.extend_from_slice(&1u16.to_le_bytes());
    huge.extend_from_slice(&24u16.to_le_bytes());
    huge.extend_from_slice(&[0; 24]);
    let cases: [(&[u8], StatusCode, &str); 4] = [
        (b"", StatusCode::UNSUPPORTED_MEDIA_TYPE, "The file is empty"),
        (
            b"%PDF-1.4 not a photo",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image",
        ),
        (
            &whole[..whole.len() / 2],
            StatusCode::UNPROCESSABLE_ENTITY,
            "damaged or truncated",
        ),
        (&huge, StatusCode::UNPROCESSABLE_ENTITY, "30000x30000"),
    ];
    for (bytes, expected, words) in cases {
        let form = Multipart::default().file("image", "upload", bytes);
        let (status, json) = server.post_form("/api/actors/predict", form).await;
        assert_eq!(status, expected, "{json}");
        assert!(error_of(&json).contains(words), "{json}");
    }
}

#[tokio::test]
async fn a_form_without_the_photo_or_not_a_form_is_refused() {
    let server = server(with_actors()).await;
    let form = Multipart::default().text("picture", "x");
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_of(&json).contains("'image'"), "{json}");

    let (status, json) = server.post_json("/api/actors/predict", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&json).contains("multipart/form-data"), "{json}");
}

#[tokio::test]
async fn an_upload_over_the_limit_gets_413_with_a_sentence() {
    let limits = Limits {
        max_upload_mb: 1,
        ..Limits::default()
    };
    let server = server_with_limits(with_actors(), limits).await;
    let form = Multipart::default().file("image", "big.bin", &vec![7u8; 1_200_000]);
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_of(&json).contains("1 MB limit"), "{json}");
}

#[tokio::test]
async fn a_panicking_model_is_a_500_and_the_server_keeps_serving() {
    let server = server(
        Models {
            actors: Some(Arc::new(PanickingRecognizer::new())),
            ..Default::default()
        }
        .into(),
    )
    .await;
    let form = Multipart::default().file("image", "a.png", &png(8, 8, [1, 2, 3]));
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(error_of(&json).contains("Something went wrong"), "{json}");
    assert!(
        !error_of(&json).contains("index out of bounds"),
        "internals leaked: {json}"
    );
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn horoscope_requests_are_checked_field_by_field() {
    let server = server(with_writer(EchoWriter::new(3, Duration::ZERO))).await;
    let cases = [
        (
            r#"{"sign": "dragon"}"#,
            "aries, taurus, gemini, cancer, leo, virgo, libra, scorpio, sagittarius, capricorn, aquarius, pisces",
        ),
        (r#"{"sign": "leo", "date": "22/11/2026"}"#, "YYYY-MM-DD"),
        (
            r#"{"sign": "leo", "temperature": 3.5}"#,
            "temperature 3.5 is out of range",
        ),
        (
            r#"{"sign": "leo", "top_p": 0}"#,
            "top_p value 0 is out of range",
        ),
    ];
    for (body, words) in cases {
        let (status, json) = server.post_json("/api/horoscope", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(error_of(&json).contains(words), "{json}");
    }
    let (status, json) = server.post_json("/api/horoscope", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&json).contains("JSON"), "{json}");
}

#[tokio::test]
async fn a_sign_written_in_russian_or_lang_ru_goes_to_the_russian_model() {
    let models: ServedModels = Models {
        horoscopes: vec![
            Arc::new(EchoWriter::new(3, Duration::ZERO).writing(Language::En)),
            Arc::new(EchoWriter::new(3, Duration::ZERO).writing(Language::Ru)),
        ],
        ..Default::default()
    }
    .into();
    let server = server(models).await;
    for (body, model) in [
        (
            r#"{"sign": "Овен", "date": "2026-03-21", "seed": 5}"#,
            "echo-ru",
        ),
        (r#"{"sign": "aries", "lang": "ru"}"#, "echo-ru"),
        (r#"{"sign": "Овен", "lang": "en"}"#, "echo-en"),
        (r#"{"sign": "aries"}"#, "echo-en"),
    ] {
        let (status, json) = server.post_json("/api/horoscope", body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {json}");
        assert_eq!(json["sign"], "aries");
        assert!(
            json["model"].as_str().unwrap().starts_with(model),
            "{body}: {json}"
        );
    }
    let (status, json) = server
        .post_json("/api/horoscope", r#"{"sign": "leo", "lang": "de"}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert!(
        error_of(&json).contains("en (English) or ru (Russian)"),
        "{json}"
    );
}

#[tokio::test]
async fn a_language_no_model_writes_is_a_503_naming_the_served_ones() {
    let server = server(with_writer(EchoWriter::new(3, Duration::ZERO))).await;
    let (status, json) = server
        .post_json(
            "/api/horoscope",
            r#"{"sign": "Овен", "date": "2026-03-21"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(
        error_of(&json),
        "No horoscope model here writes Russian (ru): ask for lang=en."
    );
    let (status, json) = server
        .post_json("/api/horoscope", r#"{"sign": "Овен", "lang": "en"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["sign"], "aries");
}

#[tokio::test]
async fn without_a_text_model_horoscopes_are_unavailable() {
    let server = server(ServedModels::default()).await;
    let (status, json) = server
        .post_json("/api/horoscope", r#"{"sign": "leo"}"#)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&json).contains("No horoscope model"), "{json}");
    let (status, body) = server.get("/api/horoscope/stream?sign=leo").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn an_unusable_sample_is_followed_by_a_restart_event() {
    let server = server(with_writer(
        EchoWriter::new(2, Duration::ZERO).with_draft(2),
    ))
    .await;
    let (status, body) = server
        .get("/api/horoscope/stream?sign=leo&date=2026-08-01")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("event: ")))
        .collect();
    assert_eq!(
        names,
        ["token", "token", "restart", "token", "token", "done"]
    );
}

#[tokio::test]
async fn streams_one_token_per_event_then_the_horoscope() {
    let server = server(with_writer(EchoWriter::new(4, Duration::ZERO))).await;
    let (status, body) = server
        .get("/api/horoscope/stream?sign=%E2%99%8C&date=2026-08-01")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events: Vec<(&str, &str)> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let event = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("");
            (event, data)
        })
        .collect();
    let tokens: Vec<&str> = events
        .iter()
        .filter(|(e, _)| *e == "token")
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(tokens, ["Leo 2026-08-01", " word1", " word2", " word3"]);
    let (last_event, last_data) = events.last().unwrap();
    assert_eq!(*last_event, "done");
    let horoscope: Value = serde_json::from_str(last_data).unwrap();
    assert_eq!(horoscope["text"], "Leo 2026-08-01 word1 word2 word3");
    let (status, body) = server.get("/api/horoscope/stream?sign=ophiuchus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("use one of aries"), "{body}");
    let (status, body) = server
        .get("/api/horoscope/stream?sign=leo&temperature=warm")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("query string"), "{body}");
}

#[tokio::test]
async fn generation_stops_when_the_reader_goes_away() {
    let writer = EchoWriter::new(100_000, Duration::from_millis(1));
    let written = writer.written.clone();
    let server = server(with_writer(writer)).await;
    let response = server
        .send_streaming(
            Request::get("/api/horoscope/stream?sign=leo")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some());
    drop(body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = written.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = written.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        after_drop, later,
        "generation went on after the client left"
    );
    assert!(later < 100_000);
}

#[tokio::test]
async fn flags_are_stored_with_the_photo() {
    let server = server(with_actors()).await;
    let photo = png(4, 4, [1, 2, 3]);
    let form = Multipart::default()
        .text("task", "actors")
        .text("input", r#"{"file": "me.png"}"#)
        .text(
            "output",
            r#"{"predictions": [{"label": "red", "score": 0.4}]}"#,
        )
        .text("reason", "that is not me")
        .text("label", "Cleo")
        .file("image", "photo", &photo);
    let (status, json) = server.post_form("/api/flags", form).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let id = json["id"].as_str().unwrap();
    let store = flag_store(server.data.path()).await;
    let listed = store.list().await.unwrap();
    let record = listed
        .iter()
        .find(|r| r.id == id)
        .expect("the flag is listed");
    assert_eq!(record.reason, "that is not me");
    assert_eq!(record.label.as_deref(), Some("Cleo"));
    assert_eq!(record.output["predictions"][0]["label"], "red");
    assert_eq!(store.photo(record).await.unwrap(), Some(photo));
}

#[tokio::test]
async fn bad_flags_are_refused_and_nothing_is_stored() {
    let server = server(with_actors()).await;
    let cases = [
        (
            Multipart::default()
                .text("task", "weather")
                .text("input", "{}")
                .text("output", "{}"),
            "'weather'",
        ),
        (
            Multipart::default()
                .text("task", "horoscope")
                .text("input", "{oops")
                .text("output", "{}"),
            "input",
        ),
        (
            Multipart::default()
                .text("task", "horoscope")
                .text("input", "{}"),
            "'output'",
        ),
        (
            Multipart::default()
                .text("task", "actors")
                .text("input", "{}")
                .text("output", "{}")
                .file("image", "x", b"not a photo"),
            "image",
        ),
        (
            Multipart::default()
                .text("task", "actors")
                .text("input", "{}")
                .text("output", "{}")
                .text("label", "../../etc"),
            "label",
        ),
    ];
    for (form, words) in cases {
        let (status, json) = server.post_form("/api/flags", form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
        assert!(error_of(&json).contains(words), "{json}");
    }
    assert!(server.state.flags.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn models_health_and_metrics_report_what_is_served() {
    let server = server(with_actors()).await;
    let (status, body) = server.get("/api/models").await;
    assert_eq!(status, StatusCode::OK);
    let models: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models[0]["task"], "image-classification");
    assert_eq!(models[0]["labels"][2], "blue");
    let (_, body) = server.get("/healthz").await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["models"], 1);
    assert_eq!(health["device"], "cpu");
    let kernels: starcast_model::kernels::KernelPath =
        health["kernels"].as_str().unwrap().parse().unwrap();
    assert!(kernels.supported(), "{health}");

    let form = Multipart::default().file("image", "a.png", &png(8, 8, [1, 200, 3]));
    server.post_form("/api/actors/predict", form).await;
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(r#"starcast_http_requests_total{method="POST",route="/api/actors/predict",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"starcast_model_calls_total{task="actors",model="colours@test",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"starcast_prediction_confidence_count{task="actors",model="colours@test"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"starcast_model_duration_seconds_count{task="actors",model="colours@test"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("starcast_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn pages_can_be_framed_by_the_hub_only_and_are_not_sniffed() {
    let server = server(with_actors()).await;
    let response = server
        .send(Request::get("/").body(Body::empty()).unwrap())
        .await;
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("frame-ancestors 'self'"), "{policy}");
    assert!(policy.contains("https://huggingface.co"), "{policy}");
}

#[tokio::test]
async fn another_sites_page_cant_post_but_the_apps_own_and_scripts_can() {
    let server = server(with_actors()).await;
    let flag = |origin: Option<&str>| {
        let form = Multipart::default()
            .text("task", "horoscope")
            .text("input", "{}")
            .text("output", "{}");
        let mut request = form.request("/api/flags");
        request
            .headers_mut()
            .insert("host", "space.example".parse().unwrap());
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        request
    };
    let refused = server.send(flag(Some("https://evil.example"))).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = common::text(refused).await;
    assert!(body.contains("another site"), "{body}");
    assert!(server.state.flags.list().await.unwrap().is_empty());
    let own = server.send(flag(Some("https://space.example"))).await;
    assert_eq!(own.status(), StatusCode::OK);
    let script = server.send(flag(None)).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(server.state.flags.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn made_up_methods_share_one_metrics_label() {
    let server = server(with_actors()).await;
    for n in 0..50 {
        let request = Request::builder()
            .method(format!("BREW{n}").as_str())
            .uri("/healthz")
            .body(Body::empty())
            .unwrap();
        server.send(request).await;
    }
    let (_, metrics) = server.get("/metrics").await;
    assert!(!metrics.contains("BREW"), "{metrics}");
    assert!(
        metrics.contains(
            r#"starcast_http_requests_total{method="other",route="/healthz",status="405"} 50"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn served_files_and_unknown_paths_have_a_label_each() {
    let server = server(ServedModels::default()).await;
    let (status, _) = server.get("/favicon.svg").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(
            r#"starcast_http_requests_total{method="GET",route="static",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"starcast_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint() {
    let server = server(ServedModels::default()).await;
    let (status, body) = server.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/actors/predict",
        "/api/horoscope",
        "/api/horoscope/stream",
        "/api/flags",
        "/api/models",
        "/healthz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    assert!(doc["components"]["schemas"].get("ActorReport").is_some());
}

#[tokio::test]
async fn while_the_models_load_health_and_predictions_say_so_and_pages_answer() {
    let server = server(ServedModels::loading()).await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""status":"loading""#), "{body}");
    let (status, _) = server.get("/").await;
    assert_eq!(status, StatusCode::OK);
    let form = Multipart::default().file("image", "a.png", &png(8, 8, [1, 200, 3]));
    let response = server.send(form.request("/api/actors/predict")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    let body = text(response).await;
    assert!(body.contains("still loading"), "{body}");

    server.state.models.finish_loading(Models::default());
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let form = Multipart::default().file("image", "a.png", &png(8, 8, [1, 200, 3]));
    let (status, json) = server.post_form("/api/actors/predict", form).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("actor recognition model is loaded yet"),
        "{json}"
    );
}

#[tokio::test]
async fn errors_are_told_in_the_language_the_request_asks_for() {
    let server = server(with_actors()).await;
    let empty_photo = |headers: &[(&'static str, &str)]| {
        let mut request = Multipart::default()
            .file("image", "empty.jpg", b"")
            .request("/api/actors/predict");
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        request
    };
    let answer = async |request| {
        let response = server.send(request).await;
        let status = response.status();
        let json: Value = serde_json::from_str(&text(response).await).unwrap();
        (status, error_of(&json).to_string())
    };

    let (status, english) = answer(empty_photo(&[])).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(english.starts_with("The file is empty"), "{english}");
    let (status, russian) = answer(empty_photo(&[(
        "accept-language",
        "ru-RU,ru;q=0.9,en;q=0.8",
    )]))
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(russian.starts_with("Файл пуст"), "{russian}");
    // The language switch's cookie wins over the browser's languages.
    let (_, switched) = answer(empty_photo(&[
        ("accept-language", "en-US"),
        ("cookie", "theme=dark; starcast-lang=ru"),
    ]))
    .await;
    assert_eq!(switched, russian);
    let (_, back) = answer(empty_photo(&[
        ("accept-language", "ru"),
        ("cookie", "starcast-lang=en"),
    ]))
    .await;
    assert_eq!(back, english);
}

#[tokio::test]
async fn a_full_review_queue_says_so_and_keeps_what_it_has() {
    let mut server = server(with_actors()).await;
    let quota = Quota {
        flags: 1,
        bytes: 1 << 20,
    };
    server.state.flags = flag_store(server.data.path()).await.with_quota(quota);
    let flag = || {
        Multipart::default()
            .text("task", "horoscope")
            .text("input", r#"{"sign": "leo"}"#)
            .text("output", r#"{"text": "The day is yours."}"#)
    };
    let (status, json) = server.post_form("/api/flags", flag()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, json) = server.post_form("/api/flags", flag()).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{json}");
    assert!(
        error_of(&json).contains("review queue is full"),
        "the user is told why: {json}"
    );
    assert_eq!(server.state.flags.list().await.unwrap().len(), 1);
}
