//! A cap on open connections: past it, new connections wait in the
//! kernel's backlog until one closes, so a crowd of idle or slow clients
//! can't hold every file descriptor and task the server has.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `inner`, holding at most `cap` connections open at once.
pub struct CappedListener<L> {
    inner: L,
    slots: Arc<Semaphore>,
}

impl<L> CappedListener<L> {
    pub fn new(inner: L, cap: usize) -> Self {
        CappedListener {
            inner,
            slots: Arc::new(Semaphore::new(cap.max(1))),
        }
    }
}

/// A connection and the slot it holds until it closes.
pub struct Capped<I> {
    io: I,
    _slot: OwnedSemaphorePermit,
}

impl<I> Capped<I> {
    /// The connection itself (to set socket options).
    pub fn get_ref(&self) -> &I {
        &self.io
    }
}

impl<L: Listener> Listener for CappedListener<L> {
    type Io = Capped<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            // The semaphore is never closed; were it, accept nothing more.
            return std::future::pending().await;
        };
        let (io, address) = self.inner.accept().await;
        (Capped { io, _slot: slot }, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Capped<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Capped<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_connection_past_the_cap_waits_until_one_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut capped = CappedListener::new(listener, 1);
        let first = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut held, _) = capped.accept().await;
        let _second = tokio::net::TcpStream::connect(address).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(200), capped.accept()).await;
        assert!(waited.is_err(), "the second was accepted past the cap");
        held.write_all(b"bye").await.unwrap();
        let mut first = first;
        let mut greeting = [0; 3];
        first.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"bye");
        drop(held);
        let accepted = tokio::time::timeout(Duration::from_secs(5), capped.accept()).await;
        assert!(accepted.is_ok(), "a slot freed lets the next one in");
    }
}
