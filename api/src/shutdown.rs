//! Graceful shutdown of long-lived connections: the server tells open WebSockets to
//! finish what is in flight and close (1001), then waits for them before HTTP drains.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Tells open sockets to go away and waits until they have.
#[derive(Clone)]
pub struct Shutdown {
    signal: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    closed: Arc<Notify>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { signal: watch::channel(false).0, open: Arc::default(), closed: Arc::default() }
    }
}

/// Counts one open socket while alive.
pub struct Open(Shutdown);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.closed.notify_waiters();
    }
}

impl Shutdown {
    /// Asks every open socket to finish and close with 1001.
    pub fn signal(&self) {
        self.signal.send_replace(true);
    }

    /// A receiver that turns true when the server is going away.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.signal.subscribe()
    }

    /// Sockets open now.
    pub fn open_sockets(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits until every socket has closed, at most `limit`.
    pub async fn drained(&self, limit: Duration) {
        let wait = async {
            loop {
                let notified = self.closed.notified();
                if self.open_sockets() == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            tracing::warn!(open = self.open_sockets(), "WebSockets still open at shutdown");
        }
    }

    /// Counts a socket as open until the returned guard drops.
    pub fn enter(&self) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        Open(self.clone())
    }
}
