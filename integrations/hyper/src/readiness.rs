//! [`Readiness`]: whether a server is draining, for a health endpoint.

use std::fmt;
use std::pin::pin;
use std::sync::{Arc, OnceLock};

use tethered::{CancelReason, StopSignal};
use tokio::sync::Notify;

/// Whether a [`Server`](crate::Server) is draining: from the moment the
/// stop reaches it, a readiness probe should answer "not ready", so that a
/// load balancer sends no new traffic while the requests in flight finish.
///
/// Cheap to clone; take it before serving ([`Server::readiness`]) and hand
/// it to the health handler.
///
/// ```
/// use axum::http::StatusCode;
/// use axum::routing::get;
/// use tethered_hyper::{Readiness, Server};
///
/// fn app(readiness: Readiness) -> axum::Router {
///     axum::Router::new().route(
///         "/ready",
///         get(move || async move {
///             match readiness.is_draining() {
///                 true => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
///                 false => (StatusCode::OK, "ready"),
///             }
///         }),
///     )
/// }
/// # async fn run(listener: tokio::net::TcpListener) {
/// let server = Server::new(listener);
/// let app = app(server.readiness());
/// # let _ = server.serve(app);
/// # }
/// ```
///
/// [`Server::readiness`]: crate::Server::readiness
#[derive(Clone, Default)]
pub struct Readiness(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// The server's stop, once it serves.
    signal: OnceLock<StopSignal>,
    /// Wakes those waiting for the server to start serving.
    attached: Notify,
}

impl Readiness {
    /// Whether the server has been asked to stop (it has stopped accepting,
    /// and is finishing the requests in flight).
    pub fn is_draining(&self) -> bool {
        self.0.signal.get().is_some_and(StopSignal::is_stopping)
    }

    /// Why the server is draining, if it is.
    pub fn reason(&self) -> Option<CancelReason> {
        self.0.signal.get().and_then(StopSignal::reason)
    }

    /// Resolves, with the reason, once the server drains: for a health
    /// service that is told rather than asked, such as `tonic-health`'s
    /// reporter.
    ///
    /// ```
    /// # async fn run(listener: tokio::net::TcpListener, app: axum::Router) {
    /// use tethered_hyper::Server;
    ///
    /// let server = Server::new(listener);
    /// let readiness = server.readiness();
    /// tokio::spawn(async move {
    ///     let reason = readiness.draining().await;
    ///     eprintln!("not ready: {reason}");
    /// });
    /// # let _ = server.serve(app);
    /// # }
    /// ```
    pub async fn draining(&self) -> CancelReason {
        let mut attached = pin!(self.0.attached.notified());
        // Registered before the check, so that a server starting in
        // between still wakes this future.
        attached.as_mut().enable();
        let signal = match self.0.signal.get() {
            Some(signal) => signal,
            None => {
                attached.await;
                self.0.signal.get().expect("woken once the signal is set")
            }
        };
        signal.wait().await
    }

    /// Ties the readiness to the server's stop, once it serves.
    pub(crate) fn attach(&self, signal: StopSignal) {
        if self.0.signal.set(signal).is_ok() {
            self.0.attached.notify_waiters();
        }
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("draining", &self.is_draining())
            .finish()
    }
}
