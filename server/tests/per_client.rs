//! Limits per client address over real TCP, where the server knows the
//! peer: flags at a bounded rate, and wrong admin tokens few enough that
//! guessing is hopeless (after them even the right token waits).

mod common;

use common::{
    ADMIN_TOKEN, ColourRecognizer, Multipart, over_tcp, serve_over_tcp, server_with_admin,
};
use starcast_model::Models;

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_from_one_address_are_rate_limited() {
    let server = server_with_admin(Models::default().into()).await;
    let address = serve_over_tcp(server.state.clone()).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let form = Multipart::default()
            .text("task", "horoscope")
            .text("input", "{}")
            .text("output", "{}");
        let response = over_tcp(address, form.raw("/api/flags", "")).await;
        statuses.push(status(&response).to_string());
        if status(&response) == "429" {
            assert!(
                response.to_ascii_lowercase().contains("retry-after:"),
                "{response}"
            );
            assert!(response.contains("Too many flags"), "{response}");
        }
    }
    let accepted = statuses.iter().filter(|s| *s == "200").count();
    assert_eq!(accepted, 10, "{statuses:?}");
    assert_eq!(statuses[10..], ["429", "429"], "{statuses:?}");
    assert_eq!(server.state.flags.list().await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_tokens_lock_the_address_out_for_a_while() {
    let models = Models {
        actors: Some(std::sync::Arc::new(ColourRecognizer::new())),
        ..Default::default()
    };
    let server = server_with_admin(models.into()).await;
    let address = serve_over_tcp(server.state.clone()).await;
    let start_run = |token: &str| {
        format!(
            "POST /api/admin/pipeline/runs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for guess in 0..5 {
        let response = over_tcp(address, start_run(&format!("guess-{guess}"))).await;
        assert_eq!(status(&response), "401", "{response}");
    }
    let response = over_tcp(address, start_run("guess-5")).await;
    assert_eq!(status(&response), "429", "{response}");
    let response = over_tcp(address, start_run(ADMIN_TOKEN)).await;
    assert_eq!(
        status(&response),
        "429",
        "even the right token waits: {response}"
    );
}
