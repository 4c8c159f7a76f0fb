//! Who a request comes from, for limits per client: the peer's address, or
//! the last `X-Forwarded-For` entry when the peer is a proxy the operator
//! trusts (a Space sits behind one; anyone else could write the header).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// How often each client may do something: a token bucket per address,
/// `burst` at once and `per_minute` over time.
#[derive(Clone, Debug)]
pub struct RateLimit {
    what: &'static str,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
    per_minute: f64,
    burst: f64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Beyond this many addresses, full buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

impl RateLimit {
    pub fn new(what: &'static str, per_minute: u32, burst: u32) -> Self {
        RateLimit {
            what,
            buckets: Arc::default(),
            per_minute: f64::from(per_minute.max(1)),
            burst: f64::from(burst.max(1)),
        }
    }

    /// Refuses when `client` has no token left, taking none.
    pub fn check(&self, client: ClientAddress) -> Result<(), ApiError> {
        self.spend(client, 0.0)
    }

    /// Takes one token of `client`'s, or refuses with the wait until the
    /// next. A client of unknown address is not limited.
    pub fn take(&self, client: ClientAddress) -> Result<(), ApiError> {
        self.spend(client, 1.0)
    }

    fn spend(&self, client: ClientAddress, cost: f64) -> Result<(), ApiError> {
        let Some(address) = client.0 else {
            return Ok(());
        };
        let now = Instant::now();
        let rate = self.per_minute / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_TRACKED {
            let burst = self.burst;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(self.burst);
        *bucket = Bucket {
            tokens: refilled,
            at: now,
        };
        if refilled < 1.0 {
            let wait = ((1.0 - refilled) / rate).ceil() as u64;
            return Err(ApiError::RateLimited {
                what: self.what,
                retry_after: wait.max(1),
            });
        }
        bucket.tokens -= cost;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_rate_waits_and_others_do_not() {
        let limit = RateLimit::new("flags", 60, 2);
        let alice = ClientAddress(Some("10.0.0.1".parse().unwrap()));
        assert!(limit.take(alice).is_ok());
        assert!(limit.take(alice).is_ok());
        let err = limit.take(alice).unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::RateLimited {
                    what: "flags",
                    retry_after: 1
                }
            ),
            "{err}"
        );
        assert!(
            limit
                .take(ClientAddress(Some("10.0.0.2".parse().unwrap())))
                .is_ok()
        );
        assert!(limit.take(ClientAddress(None)).is_ok());
    }

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
