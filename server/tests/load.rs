//! The pages under concurrent load over real TCP on loopback, on a
//! multi-threaded runtime, as in production: every response must arrive
//! whole. (A page's state once crashed when dropped on another thread; the
//! symptom was cut-off responses.)

mod common;

use std::time::Duration;

use common::{join_within, over_tcp, server};
use starcast_model::ServedModels;
use tokio::net::TcpListener;

const CLIENTS: usize = 16;
const ROUNDS: usize = 8;

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    over_tcp(address, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_arrive_whole_under_concurrent_load() {
    let server = server(ServedModels::default()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, server.app()).into_future());

    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        clients.spawn(async move {
            for _ in 0..ROUNDS {
                for path in ["/", "/horoscope", "/models"] {
                    let response = get(address, path).await;
                    assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
                    assert!(
                        response.contains("</html>"),
                        "{path} was cut off: {response}"
                    );
                    assert!(
                        response.ends_with("0\r\n\r\n"),
                        "{path} did not end its chunked body"
                    );
                }
            }
        });
    }
    join_within(clients, Duration::from_secs(120)).await;
}
