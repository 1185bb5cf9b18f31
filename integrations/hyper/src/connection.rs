//! One connection: hyper serving it in the connection's task, told to
//! finish when the server drains, and a scope for its HTTP/2 streams.
//!
//! HTTP/1 requests come one at a time, and hyper polls each in the
//! connection's own future: their scopes are the connection task's
//! children, so the tree reads `connection … › GET /slow`. HTTP/2 requests
//! run side by side, and hyper hands each stream to an executor to run as a
//! task of its own. Those tasks need a scope to belong to: it is started
//! inside the connection's task the first time hyper hands it a stream
//! (an HTTP/1 connection never has one), and it closes once the
//! connection is done, after its last stream.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tethered::{Scope, ScopeHandle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::report::Log;
use crate::request::ScopedService;
use crate::{BoxError, lock};

/// A stream's future, as hyper hands it over.
type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How connections are served, as the [`Server`](crate::Server) was told.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Settings {
    /// How long a client may take to send a request's head (HTTP/1).
    pub(crate) header_read_timeout: Option<Duration>,
}

/// Serves one connection until it ends: the client closes it, an error
/// ends it, or the server's stop has it finish its requests and close.
pub(crate) async fn serve<I, S, B>(
    io: I,
    peer: SocketAddr,
    service: S,
    log: Arc<Log>,
    settings: Settings,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let streams = Arc::new(Streams::default());
    let mut builder = auto::Builder::new(StreamExecutor(streams.clone()));
    if let Some(timeout) = settings.header_read_timeout {
        // Armed for every request head: a timer of tokio's each time.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout);
    }
    let service = ScopedService {
        service,
        log: log.connection(peer),
    };
    let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));

    let mut stop = pin!(tethered::stop_requested());
    let mut draining = false;
    let (close, closed) = oneshot::channel::<()>();
    let mut closed = Some(closed);
    let mut stream_scope: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    let mut streams_done = false;
    let mut registered = false;
    let ended = poll_fn(|cx| {
        // Once: a task's waker stays the same for its whole life.
        if !registered {
            registered = true;
            streams.register(cx.waker());
        }
        if !draining && stop.as_mut().poll(cx).is_ready() {
            // HTTP/1: keep-alive off, the request in flight finished, then
            // closed; HTTP/2: a GOAWAY, the open streams finished, then
            // closed; a connection yet to send its first bytes: closed.
            draining = true;
            connection.as_mut().graceful_shutdown();
        }
        let ended = connection.as_mut().poll(cx);
        if stream_scope.is_none()
            && streams.wanted()
            && let Some(closed) = closed.take()
        {
            stream_scope = Some(Box::pin(run_streams(streams.clone(), closed)));
        }
        if let Some(scope) = stream_scope.as_mut()
            && !streams_done
        {
            streams_done = scope.as_mut().poll(cx).is_ready();
        }
        ended
    })
    .await;
    // The stream scope's body returns; the scope then joins what is left.
    drop(close);
    if let Some(mut scope) = stream_scope
        && !streams_done
    {
        scope.as_mut().await;
    }
    if let Err(error) = ended {
        // A client's business (it went away, it spoke no HTTP): the
        // connection's end, not the server's failure.
        tracing::debug!(target: "tethered::hyper", %peer, %error, "connection ended with an error");
    }
}

/// The scope of a connection's HTTP/2 streams: open until `closed`.
async fn run_streams(streams: Arc<Streams>, closed: oneshot::Receiver<()>) {
    let ran = Scope::builder()
        .name("h2 streams")
        .run(async |scope| {
            streams.open(scope.handle());
            let _ = closed.await;
        })
        .await;
    if let Err(error) = ran {
        // A request's failure is its own (answered 500 in its scope): what
        // reaches here is hyper's, or the connection's being cancelled.
        tracing::debug!(target: "tethered::hyper", %error, "HTTP/2 streams ended");
    }
}

/// Where hyper's HTTP/2 streams go: held until the stream scope runs, then
/// spawned into it.
#[derive(Default)]
struct Streams {
    /// Set once a stream is waiting for the scope: read on every poll of
    /// the connection, so an HTTP/1 connection never takes the lock.
    wanted: AtomicBool,
    state: Mutex<StreamsState>,
}

#[derive(Default)]
struct StreamsState {
    /// The stream scope, once it runs.
    scope: Option<ScopeHandle>,
    /// Streams handed over before it ran.
    pending: Vec<StreamFuture>,
    /// The connection's task, to wake when a stream comes from elsewhere
    /// than its own poll.
    waker: Option<Waker>,
}

impl Streams {
    /// Whether a stream waits for the scope to start.
    fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    /// Registers the connection's task, to be woken by a stream handed
    /// over outside its poll.
    fn register(&self, waker: &Waker) {
        lock(&self.state).waker = Some(waker.clone());
    }

    /// The scope runs: spawns the streams that waited, and every later one
    /// as it comes.
    fn open(&self, scope: ScopeHandle) {
        let pending = {
            let mut state = lock(&self.state);
            state.scope = Some(scope.clone());
            std::mem::take(&mut state.pending)
        };
        for stream in pending {
            spawn_stream(&scope, stream);
        }
    }

    fn execute(&self, stream: StreamFuture) {
        let mut state = lock(&self.state);
        match state.scope.clone() {
            Some(scope) => {
                drop(state);
                spawn_stream(&scope, stream);
            }
            None => {
                state.pending.push(stream);
                self.wanted.store(true, Ordering::Release);
                if let Some(waker) = &state.waker {
                    waker.wake_by_ref();
                }
            }
        }
    }
}

fn spawn_stream(scope: &ScopeHandle, stream: StreamFuture) {
    if scope.try_spawn_named("h2 stream", stream).is_err() {
        // The connection is being cancelled: the stream is dropped, and
        // hyper resets it.
        tracing::debug!(target: "tethered::hyper", "HTTP/2 stream refused: its connection is closing");
    }
}

/// The executor hyper hands HTTP/2 streams to.
#[derive(Clone)]
struct StreamExecutor(Arc<Streams>);

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        self.0.execute(Box::pin(stream));
    }
}
