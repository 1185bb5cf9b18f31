//! [`Server`]: a listener served inside a supervisor, one child per
//! connection, drained in phases when the enclosing scope stops.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use tethered::{DEFAULT_CANCEL_TIMEOUT, DEFAULT_GRACE, Supervisor, SupervisorError};
use tokio::net::TcpListener;

use crate::connection::{self, Settings};
use crate::report::{Log, Served};
use crate::{BoxError, Listener, Readiness};

/// An HTTP server (HTTP/1.1 and HTTP/2, on one listener) whose connections
/// and requests live in tethered's task tree.
///
/// [`serve`](Self::serve) runs a [`Supervisor`] named after the server:
/// the accept loop is its body, each connection a dynamic child named
/// `connection <peer>`, each request a scope named `<METHOD> <path>` under
/// its connection. When the enclosing scope stops (in
/// `#[tethered::main]`, on SIGTERM or Ctrl-C), or the supervisor is shut
/// down, the server drains:
///
/// 1. the listener is closed at once: new connections are refused, and the
///    [`Readiness`] says "draining";
/// 2. every connection is told to finish: HTTP/1 turns keep-alive off and
///    closes after the request in flight, HTTP/2 sends GOAWAY and closes
///    after its open streams, an idle connection closes at once;
/// 3. the requests in flight get the [`grace`](Self::grace) to finish;
/// 4. the connections still open are cancelled, and with them their
///    requests, each with the drain's reason; the server waits
///    [`cancel_timeout`](Self::cancel_timeout) for them (and for the
///    shields their handlers started) to end;
/// 5. [`Served`] reports every connection and every request the drain cut
///    short (method, path, client, age, reason), and any still running.
///
/// # Examples
///
/// ```no_run
/// use axum::routing::get;
/// use tethered_hyper::Server;
///
/// #[tethered::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     let app = axum::Router::new().route("/", get(|| async { "hello" }));
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
///     // Until SIGTERM or Ctrl-C; then drained, reported, and done.
///     let served = Server::new(listener).name("api").serve(app).await?;
///     println!("{served}");
///     Ok(())
/// }
/// ```
pub struct Server<L = TcpListener> {
    listener: L,
    name: Cow<'static, str>,
    grace: Duration,
    cancel_timeout: Duration,
    readiness: Readiness,
    settings: Settings,
}

impl<L: Listener> Server<L> {
    /// A server for the connections `listener` accepts: a
    /// [`TcpListener`], or any [`Listener`].
    pub fn new(listener: L) -> Self {
        Server {
            listener,
            name: Cow::Borrowed("server"),
            grace: DEFAULT_GRACE,
            cancel_timeout: DEFAULT_CANCEL_TIMEOUT,
            readiness: Readiness::default(),
            settings: Settings::default(),
        }
    }

    /// Names the server (its supervisor, in the tree, reasons and reports);
    /// `server` by default.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// How long the requests in flight get to finish once the server
    /// drains, before they are cancelled; [`DEFAULT_GRACE`] by default.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long the server waits for what it cancelled (and the shields
    /// of its handlers) to end before it reports them as still running;
    /// [`DEFAULT_CANCEL_TIMEOUT`] by default.
    pub fn cancel_timeout(mut self, timeout: Duration) -> Self {
        self.cancel_timeout = timeout;
        self
    }

    /// Closes an HTTP/1 connection whose client takes longer than
    /// `timeout` to send a request's head (its request line and headers),
    /// which keeps a client that trickles its headers in (slowloris) from
    /// holding a connection for ever. Off by default, as with `axum::serve`
    /// and hyper's own builders: arming the timer for every request costs
    /// about 2% of a small request's time (see the book's servers
    /// chapter). Set it when clients reach the server directly rather than
    /// through a proxy that already bounds this.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.settings.header_read_timeout = Some(timeout);
        self
    }

    /// The server's [`Readiness`], for a health endpoint: it says
    /// "draining" from the moment the stop reaches the server.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The listener.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// Serves `service` (an axum `Router`, a tonic `Routes`, any tower
    /// service over hyper's request bodies) until the server is stopped,
    /// then drains it as the [type's docs](Self) describe, and returns the
    /// report.
    ///
    /// The future must be polled inside a tokio runtime with the time
    /// driver, as a [`Supervisor`]'s.
    ///
    /// # Errors
    ///
    /// A [`SupervisorError`] if the server's own accept loop panicked;
    /// handlers cannot fail the server (a handler that panics fails its
    /// request with 500).
    #[track_caller]
    pub fn serve<S, B>(
        self,
        service: S,
    ) -> impl Future<Output = Result<Served, SupervisorError>> + Send + 'static
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Server {
            listener,
            name,
            grace,
            cancel_timeout,
            readiness,
            settings,
        } = self;
        let log = Arc::new(Log::new(readiness.clone()));
        let requests = log.clone();
        let supervised = Supervisor::builder()
            .name(name)
            .grace(grace)
            .cancel_timeout(cancel_timeout)
            .run(async move |sv| {
                readiness.attach(sv.stop_signal());
                accept_loop(sv, listener, |io, peer| {
                    connection::serve(io, peer, service.clone(), log.clone(), settings)
                })
                .await;
            });
        async move {
            let supervised = supervised.await?;
            Ok(Served::new(supervised.report, requests.requests()))
        }
    }
}

impl<L> std::fmt::Debug for Server<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("grace", &self.grace)
            .field("cancel_timeout", &self.cancel_timeout)
            .finish_non_exhaustive()
    }
}

/// Accepts connections until the server is asked to stop, and starts each
/// as a child of `sv`; the listener is dropped (new connections refused)
/// as soon as the stop comes.
async fn accept_loop<L, F>(
    sv: &Supervisor,
    listener: L,
    mut connection: impl FnMut(L::Io, SocketAddr) -> F,
) where
    L: Listener,
    F: Future<Output = ()> + Send + 'static,
{
    let mut listener = listener;
    let mut stop = pin!(tethered::stop_requested());
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((io, peer)) => {
                backoff.reset();
                let name = format!("connection {peer}");
                if sv.spawn(name, connection(io, peer)).is_err() {
                    break; // shutting down
                }
            }
            // The client's trouble, and over: the next one may be fine.
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(target: "tethered::hyper", %error, "a connection failed before it was accepted");
            }
            // The server's trouble (out of file descriptors, of memory):
            // accepting again at once would spin. Wait, longer each time,
            // and keep serving the connections already open.
            Err(error) => {
                let delay = backoff.next();
                tracing::warn!(
                    target: "tethered::hyper",
                    server = sv.name(),
                    %error,
                    retry_in = ?delay,
                    "accepting a connection failed; retrying",
                );
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    // Closes the listener: from here on, connections are refused.
    drop(listener);
}

/// Errors of one connection that went away while being accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// How long to wait after a failed accept: 10 ms, doubling up to a second,
/// back to the start after a success.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn next(&mut self) -> Duration {
        let delay = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tokio::net::TcpStream;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<_> = (0..10).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        for _ in 0..100 {
            backoff.next();
        }
        assert_eq!(backoff.next(), Duration::from_secs(1));
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(10));
    }

    /// A listener that fails with the errors queued, then accepts.
    struct Failing {
        errors: VecDeque<io::Error>,
        listener: TcpListener,
        attempts: Arc<Mutex<Vec<Instant>>>,
    }

    impl Listener for Failing {
        type Io = TcpStream;

        async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
            self.attempts.lock().unwrap().push(Instant::now());
            match self.errors.pop_front() {
                Some(error) => Err(error),
                None => self.listener.accept().await,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_then_serve_and_a_reset_is_retried_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let failing = Failing {
            // Out of file descriptors three times, then a client that
            // reset, then a real connection.
            errors: [
                io::Error::from_raw_os_error(24), // EMFILE
                io::Error::from(io::ErrorKind::OutOfMemory),
                io::Error::from_raw_os_error(24),
                io::Error::from(io::ErrorKind::ConnectionReset),
            ]
            .into(),
            listener,
            attempts: attempts.clone(),
        };
        let start = Instant::now();
        let (served, first_served) = tokio::sync::oneshot::channel();
        let mut served = Some(served);
        let supervised = Supervisor::builder()
            .run(async |sv| {
                let client = tokio::spawn(TcpStream::connect(addr));
                let accepting = accept_loop(sv, failing, move |_stream, _peer| {
                    let _ = served.take().map(|served| served.send(()));
                    async {}
                });
                let mut accepting = pin!(accepting);
                tokio::select! {
                    () = &mut accepting => unreachable!("not stopped"),
                    _ = first_served => {}
                }
                client.await.unwrap().unwrap();
                // The stop ends the loop, which closes the listener.
                drop(sv.shutdown("done"));
                accepting.await;
                TcpStream::connect(addr).await.unwrap_err().kind()
            })
            .await
            .unwrap();
        assert_eq!(supervised.value, Some(io::ErrorKind::ConnectionRefused));
        let offsets: Vec<u128> = attempts
            .lock()
            .unwrap()
            .iter()
            .map(|at| (*at - start).as_millis())
            .collect();
        // 10, then 20, then 40 ms apart; the reset retried at once, and
        // the success followed by the next accept at once.
        assert_eq!(offsets, [0, 10, 30, 70, 70, 70]);
    }
}
