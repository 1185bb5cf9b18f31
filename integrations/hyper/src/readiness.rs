//! [`Readiness`]: whether a server is draining, for a health endpoint.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tethered::{CancelReason, StopSignal};

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
pub struct Readiness {
    /// The server's stop, once it serves.
    signal: Arc<OnceLock<StopSignal>>,
}

impl Readiness {
    /// Whether the server has been asked to stop (it has stopped accepting,
    /// and is finishing the requests in flight).
    pub fn is_draining(&self) -> bool {
        self.signal.get().is_some_and(StopSignal::is_stopping)
    }

    /// Why the server is draining, if it is.
    pub fn reason(&self) -> Option<CancelReason> {
        self.signal.get().and_then(StopSignal::reason)
    }

    /// Ties the readiness to the server's stop, once it serves.
    pub(crate) fn attach(&self, signal: StopSignal) {
        let _ = self.signal.set(signal);
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("draining", &self.is_draining())
            .finish()
    }
}
