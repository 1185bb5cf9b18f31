//! HTTP servers inside tethered's task tree: axum routers, any tower
//! service, and tonic services, served over hyper 1 with a bounded,
//! reasoned drain.
//!
//! [`Server::serve`] runs a listener inside a [`Supervisor`]:
//!
//! * each accepted connection is a supervised child named after its peer
//!   (`connection 127.0.0.1:53122`);
//! * each request runs in a scope of its own named by method and path
//!   (`GET /slow`), so handlers can use `#[scoped]` fns, `spawn!`,
//!   `shield!` and `defer!` as anywhere else, and [`tethered::tree()`]
//!   shows `server › connection … › GET /slow`;
//! * a client that goes away cancels its request with a
//!   [`Disconnected`](tethered::CancelKind::Disconnected) reason, which the
//!   handler's children and cleanups see; its shields still finish;
//! * a handler that panics answers 500, and only its request fails;
//! * the enclosing scope's stop (a SIGTERM in `#[tethered::main]`) drains
//!   the server in phases: the listener is closed at once, every connection
//!   is told to finish (keep-alive off for HTTP/1, GOAWAY for HTTP/2), the
//!   requests in flight get the grace period, the rest are cancelled, and
//!   the [`Served`] report names every request cancelled or still running.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use tethered_hyper::Server;
//!
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let served = tethered::Scope::run(async |scope| {
//!     let server = Server::new(listener).name("api").grace(Duration::from_secs(5));
//!     scope.stop("done"); // here at once; in a service, a signal
//!     server.serve(app).await
//! })
//! .await
//! .unwrap()
//! .unwrap();
//! assert_eq!(served.requests().completed, 0);
//! # Ok(())
//! # }
//! ```
//!
//! [`Supervisor`]: tethered::Supervisor

mod body;
mod connection;
mod listener;
mod readiness;
mod report;
mod request;
mod server;

#[doc(inline)]
pub use listener::Listener;
#[doc(inline)]
pub use readiness::Readiness;
#[doc(inline)]
pub use report::{RequestEnd, RequestReport, Requests, Served};
#[doc(inline)]
pub use server::Server;

/// An error of a handler or of hyper, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Locks `mutex`, whether or not a panic poisoned it: what it guards is
/// bookkeeping that stays consistent between statements.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
