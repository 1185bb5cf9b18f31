//! A server in the tree: requests named by method and path under their
//! connection, a disconnect's reason, shields that the drain waits for,
//! panics answered 500, and the drain's phases, under paused time.

mod common;

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::in_memory;
use http::StatusCode;
use tethered::Scope;
use tethered_hyper::{RequestEnd, Server};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What the handlers saw, in order.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Writes down, when dropped, why the task dropping it was cancelled.
struct ReasonOnDrop(Journal, &'static str);

impl Drop for ReasonOnDrop {
    fn drop(&mut self) {
        // The handler's own scope inherits the reason: its root says why.
        let reason = tethered::current().cancel_reason();
        let reason = reason.map_or("not cancelled".to_owned(), |reason| {
            let root = reason.root();
            format!("{:?}: {}", root.kind(), root.message().unwrap_or_default())
        });
        self.0.push(format!("{} dropped ({reason})", self.1));
    }
}

/// A handler that writes an audit record in a shield (it takes a second and
/// must not be cut in half), then works for ten seconds.
#[tethered::scoped]
async fn audited(journal: Journal) -> &'static str {
    let writer = journal.clone();
    shield!("audit write", async move {
        sleep(secs(1)).await;
        writer.push("audit record written");
    });
    let _guard = ReasonOnDrop(journal, "handler");
    sleep(secs(10)).await;
    "done"
}

/// Panics (on purpose); a `&str` as far as the types go.
fn panic_in_handler() -> &'static str {
    panic!("handler bug (expected by the test)")
}

fn app(journal: Journal, release: Arc<Notify>) -> Router {
    let audit = journal.clone();
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/sleep/{ms}",
            get(
                |axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                    sleep(Duration::from_millis(ms)).await;
                    format!("slept {ms} ms")
                },
            ),
        )
        .route(
            "/wait",
            get(move || async move {
                release.notified().await;
                "released"
            }),
        )
        .route("/forever", get(pending::<&'static str>))
        .route("/panic", get(|| async { panic_in_handler() }))
        .route("/audit", get(move || audited(audit.clone())))
}

/// Lets spawned tasks and in-memory connections make progress without
/// moving the paused clock.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn requests_appear_in_the_tree_under_their_connection() {
    let (listener, connector) = in_memory();
    let release = Arc::new(Notify::new());
    let app = app(Journal::default(), release.clone());
    let served = Scope::run(async |scope| {
        let server = scope.spawn(Server::new(listener).name("tree-test").serve(app));
        let mut client = connector.http1().await;
        let peer = client.peer;
        let request = tokio::spawn(async move { client.get("/wait").await.map(|r| (r, client)) });
        settle().await;
        // The tree is the whole process's: other tests' servers are in it.
        let tree = tethered::tree().to_string();
        let lines: Vec<&str> = tree.lines().collect();
        let indent = |line: &str| line.len() - line.trim_start().len();
        let server_line = lines
            .iter()
            .position(|line| line.contains("supervisor `tree-test`"))
            .unwrap_or_else(|| panic!("no server in the tree:\n{tree}"));
        let depth = indent(lines[server_line]);
        let below: Vec<&str> = lines[server_line + 1..]
            .iter()
            .take_while(|line| indent(line) > depth)
            .copied()
            .collect();
        assert_eq!(below.len(), 2, "{tree}");
        assert!(
            below[0].contains(&format!("task `connection {peer}`")),
            "{tree}"
        );
        assert_eq!(indent(below[0]), depth + 2, "{tree}");
        assert!(below[1].contains("scope `GET /wait`"), "{tree}");
        assert_eq!(indent(below[1]), depth + 4, "{tree}");

        release.notify_one();
        let ((status, body), _client) = request.await.unwrap().unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "released"));
        scope.stop("test over");
        server.join().await.unwrap()
    })
    .await
    .unwrap()
    .unwrap();
    let requests = served.requests();
    assert_eq!((requests.started, requests.completed), (1, 1));
    assert!(requests.cancelled.is_empty() && requests.stragglers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_cancels_its_request_with_a_reason_and_its_shield_still_finishes() {
    let (listener, connector) = in_memory();
    let journal = Journal::default();
    let app = app(journal.clone(), Arc::default());
    let started = Instant::now();
    let served = Scope::run(async |scope| {
        let server = scope.spawn(Server::new(listener).serve(app));
        let mut client = connector.http1().await;
        let sender = client.sender.send_request(common::get("/audit"));
        let request = tokio::spawn(sender);
        sleep(Duration::from_millis(100)).await;
        // The client dies mid-request.
        request.abort();
        client.disconnect();
        settle().await;
        assert_eq!(
            journal.entries(),
            ["handler dropped (Disconnected: the client went away before the response was sent)"],
        );
        // Asked to stop while the audit write is still running: the drain
        // waits for it.
        scope.stop("deploy");
        server.join().await.unwrap()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(journal.entries()[1], "audit record written");
    assert_eq!(
        started.elapsed(),
        secs(1),
        "the drain waited for the shield, no longer"
    );
    let requests = served.requests();
    assert_eq!((requests.started, requests.disconnected), (1, 1));
    // The disconnect came before the drain: a count, not a report entry.
    assert!(requests.cancelled.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_fails_its_request_with_500_and_only_its_request() {
    let (listener, connector) = in_memory();
    let app = app(Journal::default(), Arc::default());
    let served = Scope::run(async |scope| {
        let server = scope.spawn(Server::new(listener).serve(app));
        let mut client = connector.http1().await;
        let (status, _) = client.get("/panic").await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        // The same connection serves on.
        let (status, body) = client.get("/").await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
        scope.stop("test over");
        server.join().await.unwrap()
    })
    .await
    .unwrap()
    .unwrap();
    let requests = served.requests();
    assert_eq!(
        (requests.started, requests.completed, requests.failed),
        (2, 1, 1)
    );
    assert!(
        served.report().failures().is_empty(),
        "the connection did not fail"
    );
}

#[tokio::test(start_paused = true)]
async fn the_drain_refuses_new_connections_lets_requests_finish_in_the_grace_and_reports_the_rest()
{
    let (listener, connector) = in_memory();
    let app = app(Journal::default(), Arc::default());
    let started = Instant::now();
    let server = Server::new(listener)
        .name("api")
        .grace(secs(2))
        .cancel_timeout(secs(1));
    let readiness = server.readiness();
    let served = Scope::run(async |scope| {
        let server = scope.spawn(server.serve(app));
        // An idle keep-alive connection, one finishing within the grace,
        // and one that would run for ever.
        let mut idle = connector.http1().await;
        assert_eq!(idle.get("/").await.unwrap().0, StatusCode::OK);
        let mut quick = connector.http1().await;
        let quick = tokio::spawn(async move { quick.get("/sleep/1500").await });
        let mut stuck = connector.http1().await;
        let stuck_peer = stuck.peer;
        let stuck = tokio::spawn(async move { stuck.get("/forever").await });
        sleep(Duration::from_millis(500)).await;
        assert!(!readiness.is_draining());

        scope.stop("deploy");
        settle().await;
        // At once: draining, new connections refused, the idle one closed.
        assert!(readiness.is_draining());
        assert_eq!(readiness.reason().unwrap().message(), Some("deploy"));
        assert!(
            connector.connect().is_none(),
            "a connection accepted after the stop"
        );
        assert!(
            idle.connection.await.unwrap().is_ok(),
            "the idle connection was closed"
        );

        // Within the grace: the request in flight finishes.
        let (status, body) = quick.await.unwrap().unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "slept 1500 ms"));
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        // After it: the rest is cancelled, and its client sees the
        // connection close.
        assert!(stuck.await.unwrap().is_err());
        assert_eq!(started.elapsed(), secs(2) + Duration::from_millis(500));
        let served = server.join().await.unwrap().unwrap();
        (served, stuck_peer)
    })
    .await
    .unwrap();
    let (served, stuck_peer) = served;
    let requests = served.requests();
    assert_eq!((requests.started, requests.completed), (3, 2));
    assert_eq!(requests.cancelled.len(), 1, "{requests}");
    let cut = &requests.cancelled[0];
    assert_eq!((cut.method().as_str(), cut.path()), ("GET", "/forever"));
    assert_eq!(cut.peer(), stuck_peer);
    assert_eq!(cut.age(), Duration::from_millis(2500));
    let reason = cut.reason().unwrap();
    assert_eq!(reason.root().message(), Some("deploy"), "{reason}");
    assert!(matches!(cut.end(), RequestEnd::Cancelled(_)));
    assert!(requests.stragglers.is_empty());
    let text = served.to_string();
    assert!(
        text.contains(&format!(
            "GET /forever from {stuck_peer}: cancelled after 2.5s"
        )),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn http2_streams_run_side_by_side_in_the_connection_and_drain_with_goaway() {
    let (listener, connector) = in_memory();
    let app = app(Journal::default(), Arc::default());
    let started = Instant::now();
    let served = Scope::run(async |scope| {
        let server = scope.spawn(Server::new(listener).grace(secs(5)).serve(app));
        let client = Arc::new(connector.http2().await);
        let requests: Vec<_> = (1..=3)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move { client.get(&format!("/sleep/{}", n * 1000)).await })
            })
            .collect();
        settle().await;
        let tree = tethered::tree().to_string();
        assert_eq!(tree.matches("task `h2 stream`").count(), 3, "{tree}");
        assert_eq!(tree.matches("scope `h2 streams`").count(), 1, "{tree}");
        scope.stop("deploy");
        for (n, request) in (1..=3).zip(requests) {
            let (status, body) = request.await.unwrap().unwrap();
            assert_eq!(
                (status, body),
                (StatusCode::OK, format!("slept {} ms", n * 1000))
            );
        }
        server.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        started.elapsed(),
        secs(3),
        "side by side, and the drain waited for all"
    );
    assert_eq!(served.requests().completed, 3);
}

/// A request body that sends one chunk, then never another, nor its end.
struct NeverEnding {
    sent: bool,
}

impl http_body::Body for NeverEnding {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.sent, true) {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                b"partial",
            )))))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_body_that_never_ends_is_cancelled_with_the_drain() {
    let (listener, connector) = in_memory();
    let app = Router::new().route(
        "/upload",
        axum::routing::post(|body: String| async move { body.len().to_string() }),
    );
    let started = Instant::now();
    let served = Scope::run(async |scope| {
        let server = Server::new(listener).grace(secs(1)).cancel_timeout(secs(1));
        let server = scope.spawn(server.serve(app));
        let (io, _) = connector.connect().unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::post("/upload")
            .header("host", "test")
            .body(NeverEnding { sent: false })
            .unwrap();
        let upload = tokio::spawn(async move { sender.send_request(request).await });
        sleep(secs(3)).await;
        scope.stop("deploy");
        assert!(
            upload.await.unwrap().is_err(),
            "no response to a body never read to its end"
        );
        server.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        started.elapsed(),
        secs(4),
        "stopped at 3 s, cancelled after the 1 s grace"
    );
    let requests = served.requests();
    assert_eq!(requests.cancelled.len(), 1, "{requests}");
    assert_eq!(requests.cancelled[0].path(), "/upload");
    assert_eq!(requests.cancelled[0].age(), secs(4));
}

/// A streamed body: a line every second, for ever (server-sent events, a
/// feed).
struct Ticker(tokio::time::Interval);

impl http_body::Body for Ticker {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::ready!(self.0.poll_tick(cx));
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"tick\n",
        )))))
    }
}

#[tokio::test(start_paused = true)]
async fn a_streamed_response_is_in_flight_until_its_body_ends_and_bodiless_ones_complete() {
    use http_body_util::BodyExt;

    let (listener, connector) = in_memory();
    let app = Router::new()
        .route(
            "/feed",
            get(|| async { http::Response::new(Ticker(tokio::time::interval(secs(1)))) }),
        )
        .route("/", get(|| async { "hello" }))
        .route("/nothing", get(|| async { StatusCode::NO_CONTENT }));
    let served = Scope::run(async |scope| {
        let server = Server::new(listener).grace(secs(2)).cancel_timeout(secs(1));
        let server = scope.spawn(server.serve(app));
        let mut client = connector.http1().await;
        let head = http::Request::head("/")
            .header("host", "test")
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = client.sender.send_request(head).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let (status, _) = client.get("/nothing").await.unwrap();
        assert_eq!(status, StatusCode::NO_CONTENT);

        // A feed read for a while by one client, and left by another.
        let mut reader = connector.http1().await;
        let mut feed = reader
            .sender
            .send_request(common::get("/feed"))
            .await
            .unwrap()
            .into_body();
        let mut leaver = connector.http1().await;
        let left = leaver
            .sender
            .send_request(common::get("/feed"))
            .await
            .unwrap();
        for _ in 0..3 {
            let frame = feed.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "tick\n");
        }
        drop(left);
        leaver.disconnect();
        settle().await;
        scope.stop("deploy");
        // The feed runs on through the grace, then is cut.
        while let Some(frame) = feed.frame().await {
            if frame.is_err() {
                break;
            }
        }
        server.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    let requests = served.requests();
    assert_eq!(
        (requests.started, requests.completed, requests.disconnected),
        (4, 2, 1),
        "{requests}"
    );
    assert_eq!(requests.cancelled.len(), 1, "{requests}");
    assert_eq!(requests.cancelled[0].path(), "/feed");
    assert_eq!(
        requests.cancelled[0].age(),
        secs(4),
        "2 s of feed, then the 2 s grace"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_connection_goes_to_a_task_that_outlives_its_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (listener, connector) = in_memory();
    let served = Scope::run(async |scope| {
        // The upgraded connection's task is started in a scope that
        // outlives the request (here the test's; in a service, a
        // supervisor's).
        let sessions = scope.handle();
        let app = Router::new().route(
            "/echo",
            get(move |request: axum::extract::Request| {
                let sessions = sessions.clone();
                async move {
                    sessions
                        .try_spawn_named("echo session", async move {
                            let upgraded = hyper::upgrade::on(request).await.unwrap();
                            let mut io = hyper_util::rt::TokioIo::new(upgraded);
                            let mut buffer = [0; 4];
                            io.read_exact(&mut buffer).await.unwrap();
                            io.write_all(&buffer).await.unwrap();
                        })
                        .unwrap();
                    http::Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header("connection", "upgrade")
                        .header("upgrade", "echo")
                        .body(axum::body::Body::empty())
                        .unwrap()
                }
            }),
        );
        let server = scope.spawn(Server::new(listener).serve(app));
        let (mut io, _) = connector.connect().unwrap();
        io.write_all(
            b"GET /echo HTTP/1.1\r\nhost: test\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(io.read_u8().await.unwrap());
        }
        assert!(head.starts_with(b"HTTP/1.1 101 Switching Protocols"));
        io.write_all(b"ping").await.unwrap();
        let mut echoed = [0; 4];
        io.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
        scope.stop("test over");
        server.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    let requests = served.requests();
    assert_eq!((requests.started, requests.completed), (1, 1), "{requests}");
}
