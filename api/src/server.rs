//! The accept loop: our own rather than `axum::serve`, for the edge's limits
//! (`docs/sessions.md`):
//! - HTTP/1.1 only, served by hyper's HTTP/1 connection directly: hyper-util's "auto"
//!   builder first waits, without any timeout, for enough bytes to tell HTTP/1 from
//!   HTTP/2, so a client sending `P` and nothing more held its connection forever;
//! - a client has `CRM_HEADER_TIMEOUT_MS` to send its first byte and then its headers, and
//!   an idle keep-alive connection as long to start its next request (hyper restarts its
//!   header timer when a connection goes idle);
//! - a connection whose writes make no progress for `CRM_REQUEST_TIMEOUT_MS` (a client
//!   that does not read its responses) is closed ([`Stalled`]), WebSockets included;
//! - at most `CRM_MAX_CONNECTIONS` connections are open (WebSockets included); beyond it a
//!   new connection is closed at once rather than left waiting in the backlog;
//! - at most `CRM_MAX_CONNECTIONS_PER_ADDRESS` of them from one address (`addresses.rs`);
//! - each request carries its peer's address ([`crate::http::Peer`]) for the login back-off.
use crate::state::AppState;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::Service;

/// A connection's place under `CRM_MAX_CONNECTIONS`, held while it is open; a WebSocket
/// takes it over from its upgrade request.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<(OwnedSemaphorePermit, Option<crate::addresses::AddressSlot>)>);

/// Serves on a bound listener (tests bind port 0) until `shutdown` resolves.
///
/// On shutdown, WebSockets finish what is in flight and close with 1001, the listener
/// closes, and HTTP connections finish their requests (at most 15 s each step).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let edge = state.edge;
    let sockets = state.shutdown.clone();
    let router = crate::app(state);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(edge.header_timeout);
    let slots = Arc::new(Semaphore::new(edge.max_connections));
    let per_address = crate::addresses::PerAddress::new(edge.max_connections_per_address);
    let (closing, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%address, cap = edge.max_connections, "connection refused: too many open");
            crate::meters::refused("connections");
            drop(stream);
            continue;
        };
        // Behind a trusted proxy every connection is the proxy's: no cap per address.
        let own = if edge.trust_forwarded_for {
            None
        } else {
            let Some(own) = per_address.take(address.ip()) else {
                tracing::warn!(%address, cap = per_address.cap(), "connection refused: too many open from its address");
                crate::meters::refused("connections_per_address");
                drop(stream);
                continue;
            };
            Some(own)
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot(Arc::new((permit, own)));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(crate::http::Peer { address });
            request.extensions_mut().insert(slot.clone());
            router.clone().call(request)
        });
        let http1 = http1.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte: a client that never sends
            // one is closed here.
            let mut byte = [0u8; 1];
            match tokio::time::timeout(edge.header_timeout, stream.peek(&mut byte)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let io = TokioIo::new(Stalled::new(stream, edge.request_timeout));
            let connection = http1.serve_connection(io, service).with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                r = connection.as_mut() => r,
                () = async { let _ = closing.wait_for(|c| *c).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %address, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // WebSockets first: they finish what is in flight and close with 1001; then HTTP
    // connections finish their requests.
    sockets.signal();
    sockets.drained(Duration::from_secs(15)).await;
    closing.send_replace(true);
    let all = u32::try_from(edge.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(15), slots.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after 15 s; closing them");
    }
    Ok(())
}

/// A stream whose writes fail once they have made no progress for `limit`: the peer has
/// stopped reading (its window and our buffers are full). Reads are left to hyper's
/// header timeout and the request timeout.
pub struct Stalled<T> {
    inner: T,
    limit: Duration,
    since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Stalled<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        Stalled { inner, limit, since: None }
    }

    /// Called when a write could not progress: Pending until the limit, then an error.
    fn waiting<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let timer = self.since.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(&mut self, done: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match done {
            Poll::Pending => self.waiting(cx),
            ready => {
                self.since = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalled<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalled<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let done = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(done, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let done = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(done, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(done, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progressed(done, cx)
    }
}
