//! Who a request comes from, for limits per client: the peer's address, or
//! the last `X-Forwarded-For` entry when the peer is a proxy the operator
//! trusts (a Space sits behind one; anyone else could write the header).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// The client's address, when the connection told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpAddr>>);

/// Middleware: puts the request's [`ClientAddress`] in its extensions.
pub async fn identify(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = ClientAddress(client_of(&request, &trusted.0));
    request.extensions_mut().insert(client);
    next.run(request).await
}

fn client_of(request: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    forwarded.or(Some(peer))
}

/// How many streams each client holds open, capped.
#[derive(Clone, Debug)]
pub struct StreamsPerClient {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    cap: usize,
}

/// One open stream of a client, counted until dropped.
#[derive(Debug)]
pub struct OpenStream {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl StreamsPerClient {
    pub fn new(cap: usize) -> Self {
        StreamsPerClient {
            open: Arc::default(),
            cap: cap.max(1),
        }
    }

    /// Counts a new stream of `client`, or refuses it past the cap. A
    /// client of unknown address (no connection info) is not counted.
    pub fn open(&self, client: ClientAddress) -> Result<Option<OpenStream>, ApiError> {
        let Some(client) = client.0 else {
            return Ok(None);
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.cap {
            return Err(ApiError::TooManyStreams { cap: self.cap });
        }
        *count += 1;
        Ok(Some(OpenStream {
            open: self.open.clone(),
            client,
        }))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_cap_is_refused_until_a_stream_closes() {
        let streams = StreamsPerClient::new(2);
        let alice = ClientAddress(Some("10.0.0.1".parse().unwrap()));
        let bob = ClientAddress(Some("10.0.0.2".parse().unwrap()));
        let first = streams.open(alice).unwrap();
        let _second = streams.open(alice).unwrap();
        assert!(matches!(
            streams.open(alice),
            Err(ApiError::TooManyStreams { cap: 2 })
        ));
        assert!(
            streams.open(bob).unwrap().is_some(),
            "others are not held back"
        );
        drop(first);
        assert!(streams.open(alice).is_ok());
        assert!(streams.open(ClientAddress(None)).unwrap().is_none());
    }
}
