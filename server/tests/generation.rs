//! Horoscope generation under concurrent requests over real TCP: the
//! configured number of generations run at once, the rest wait their turn,
//! and every request is answered. (Its own test binary: see
//! `TestServer::send` on building routers in parallel.)

mod common;

use std::time::Duration;

use common::{EchoWriter, join_within, over_tcp, server_with_limits};
use starcast_model::Models;
use starcast_server::Limits;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generations_take_turns_and_every_request_is_answered() {
    let writer = EchoWriter::new(5, Duration::from_millis(20));
    let most_at_once = writer.most_at_once.clone();
    let limits = Limits {
        max_concurrent_generations: 1,
        ..Limits::default()
    };
    let models = Models {
        horoscope: Some(std::sync::Arc::new(writer)),
        ..Default::default()
    }
    .into();
    let server = server_with_limits(models, limits);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, server.app()).into_future());

    let mut clients = tokio::task::JoinSet::new();
    for (i, sign) in ["leo", "virgo", "libra", "aries"].into_iter().enumerate() {
        clients.spawn(async move {
            if i % 2 == 0 {
                let body = format!(r#"{{"sign": "{sign}"}}"#);
                let request = format!(
                    "POST /api/horoscope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let response = over_tcp(address, request).await;
                assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            } else {
                let request = format!(
                    "GET /api/horoscope/stream?sign={sign} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                );
                let response = over_tcp(address, request).await;
                assert!(response.contains("event: done"), "{response}");
            }
        });
    }
    join_within(clients, Duration::from_secs(60)).await;
    assert_eq!(most_at_once.load(std::sync::atomic::Ordering::SeqCst), 1);
}
