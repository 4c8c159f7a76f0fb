//! The accept loop: HTTP/1 and HTTP/2 connections served by hyper, with two
//! bounds `axum::serve` lacks. At most `max_open` connections are open at
//! once (past it, new ones wait in the kernel's backlog until one closes),
//! and a client has `header_timeout` to send a request's headers, so a crowd
//! of idle or trickling clients (slowloris) can't hold every slot.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How many connections the server holds open and how long it waits for
/// a request's headers.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_open: usize,
    pub header_timeout: Duration,
}

/// Serves `app` until `shutdown` resolves, then waits up to `grace` for the
/// requests in flight. Handlers see the client's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_open.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        let (stream, address, slot) = accepted;
        let service = app
            .clone()
            .map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(address));
                request
            })
            .map_err(|never: Infallible| match never {});
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%address, error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    tracing::info!(
        "shutting down; waiting up to {}s for requests in flight",
        grace.as_secs()
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests were still running after the grace period; stopping anyway");
    }
}

/// The next connection, once a slot is free.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit) {
    let Ok(slot) = slots.clone().acquire_owned().await else {
        // The semaphore is never closed; were it, accept nothing more.
        return std::future::pending().await;
    };
    loop {
        match listener.accept().await {
            Ok((stream, address)) => {
                // Pages stream in small chunks: without TCP_NODELAY, Nagle's
                // algorithm and delayed ACKs hold each chunk back by up to 40 ms.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                return (stream, address, slot);
            }
            // Out of file descriptors or a connection reset before accept:
            // wait a moment rather than spin.
            Err(error) => {
                log_accept_error(&error);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn log_accept_error(error: &io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        tracing::debug!(%error, "a connection closed before it was accepted");
    } else {
        tracing::warn!(%error, "could not accept a connection");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(limits: ConnectionLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app =
            Router::new().route(
                "/",
                get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move {
                    client.ip().to_string()
                }),
            );
        tokio::spawn(serve(
            listener,
            app,
            limits,
            std::future::pending(),
            Duration::ZERO,
        ));
        address
    }

    async fn get_root(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let header_timeout = Duration::from_millis(300);
        let address = start(ConnectionLimits {
            max_open: 8,
            header_timeout,
        })
        .await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the slow client was still connected after 10 s"
        );
        assert!(started.elapsed() >= header_timeout / 2);
        let mut prompt = TcpStream::connect(address).await.unwrap();
        let answer = get_root(&mut prompt).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with("127.0.0.1"),
            "handlers see the client's address: {answer}"
        );
    }

    #[tokio::test]
    async fn a_connection_past_the_cap_waits_until_one_closes() {
        let limits = ConnectionLimits {
            max_open: 1,
            header_timeout: Duration::from_secs(30),
        };
        let address = start(limits).await;
        let held = TcpStream::connect(address).await.unwrap();
        // Let the server accept the first before the second arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut second = TcpStream::connect(address).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), get_root(&mut second)).await;
        assert!(waited.is_err(), "the second was served past the cap");
        drop(held);
        let answer = tokio::time::timeout(Duration::from_secs(10), get_root(&mut second)).await;
        assert!(
            answer.is_ok_and(|a| a.starts_with("HTTP/1.1 200")),
            "a slot freed lets the next one in"
        );
    }
}
