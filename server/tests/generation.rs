//! Horoscope generation under concurrent requests over real TCP: the
//! configured number of generations run at once, the rest wait their turn,
//! and every request is answered. (Its own test binary: see
//! `TestServer::send` on building routers in parallel.)

mod common;

use std::time::Duration;

use common::{EchoWriter, TestServer, join_within, over_tcp, serve_over_tcp, server_with_limits};
use starcast_model::Models;
use starcast_server::Limits;

/// A server writing with `writer` under `limits`, on a loopback port.
async fn serve_writer(writer: EchoWriter, limits: Limits) -> (TestServer, std::net::SocketAddr) {
    let models = Models {
        horoscopes: vec![std::sync::Arc::new(writer)],
        ..Default::default()
    };
    let server = server_with_limits(models.into(), limits).await;
    let address = serve_over_tcp(server.state.clone()).await;
    (server, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generations_take_turns_and_every_request_is_answered() {
    let writer = EchoWriter::new(5, Duration::from_millis(20));
    let most_at_once = writer.most_at_once.clone();
    let limits = Limits {
        max_concurrent_generations: 1,
        ..Limits::default()
    };
    let (_server, address) = serve_writer(writer, limits).await;

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

/// One POST /api/horoscope over TCP: the status line and the whole answer.
async fn write_horoscope(address: std::net::SocketAddr, sign: &str) -> String {
    let body = format!(r#"{{"sign": "{sign}"}}"#);
    let request = format!(
        "POST /api/horoscope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    over_tcp(address, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_is_refused_at_once_and_health_never_waits() {
    // One generation at a time, one waiting: of six at once, four are refused.
    let writer = EchoWriter::new(40, Duration::from_millis(25));
    let limits = Limits {
        max_concurrent_generations: 1,
        max_queued: 1,
        ..Limits::default()
    };
    let (_server, address) = serve_writer(writer, limits).await;

    let mut clients = tokio::task::JoinSet::new();
    for sign in ["leo", "virgo", "libra", "aries", "taurus", "gemini"] {
        clients.spawn(async move {
            let started = std::time::Instant::now();
            (write_horoscope(address, sign).await, started.elapsed())
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let health = over_tcp(
        address,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""horoscopes_waiting":1"#), "{health}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "/healthz waited {:?} behind generation",
        started.elapsed()
    );
    let (mut answered, mut refused) = (0, 0);
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(result) = clients.join_next().await {
            let (response, took) = result.unwrap();
            if response.starts_with("HTTP/1.1 200") {
                answered += 1;
            } else {
                assert!(response.starts_with("HTTP/1.1 503"), "{response}");
                assert!(
                    response.to_ascii_lowercase().contains("retry-after: 10"),
                    "{response}"
                );
                assert!(response.contains("busy"), "{response}");
                assert!(took < Duration::from_millis(900), "refused after {took:?}");
                refused += 1;
            }
        }
    });
    all.await.expect("the clients finished");
    assert_eq!((answered, refused), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_stream_is_told_where_it_stands() {
    let writer = EchoWriter::new(20, Duration::from_millis(25));
    let limits = Limits {
        max_concurrent_generations: 1,
        ..Limits::default()
    };
    let (_server, address) = serve_writer(writer, limits).await;

    let first = tokio::spawn(async move { write_horoscope(address, "leo").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stream = over_tcp(
        address,
        "GET /api/horoscope/stream?sign=virgo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(first.await.unwrap().starts_with("HTTP/1.1 200"));
    let queued = stream.find("event: queued").expect("a queued event");
    let token = stream.find("event: token").expect("tokens");
    assert!(queued < token, "{stream}");
    assert!(stream.contains(r#""ahead":0"#), "{stream}");
    assert!(stream.contains("event: done"), "{stream}");
}

/// Opens a horoscope stream and reads its status line; the stream stays open.
async fn open_stream(
    address: std::net::SocketAddr,
    headers: &str,
) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET /api/horoscope/stream?sign=leo HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0; 12];
    stream.read_exact(&mut head).await.unwrap();
    (stream, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_holds_at_most_its_share_of_streams() {
    let writer = EchoWriter::new(80, Duration::from_millis(25));
    let limits = Limits {
        max_streams_per_client: 2,
        ..Limits::default()
    };
    let server = server_with_limits(
        Models {
            horoscopes: vec![std::sync::Arc::new(writer)],
            ..Default::default()
        }
        .into(),
        limits,
    )
    .await;
    let trusting = |proxies: Vec<std::net::IpAddr>| {
        serve_over_tcp(server.state.clone().with_trusted_proxies(proxies))
    };

    // No trusted proxy: a made-up X-Forwarded-For changes nothing.
    let address = trusting(Vec::new()).await;
    let spoofed = "X-Forwarded-For: 203.0.113.9\r\n";
    let (_a, first) = open_stream(address, spoofed).await;
    let (_b, second) = open_stream(address, "").await;
    let (_c, third) = open_stream(address, spoofed).await;
    assert_eq!(
        [first.as_str(), second.as_str(), third.as_str()],
        ["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 429"]
    );

    // Behind a trusted proxy, each forwarded address is its own client.
    let address = trusting(vec!["127.0.0.1".parse().unwrap()]).await;
    let mut held = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let (stream, status) =
            open_stream(address, &format!("X-Forwarded-For: {client}\r\n")).await;
        assert_eq!(status, "HTTP/1.1 200", "{client}");
        held.push(stream);
    }
}
