//! Side-by-side benchmark: a router served by `tethered-hyper` against the
//! same router served by `axum::serve`, in one process, on loopback.
//!
//! Run with `cargo bench -p tethered-hyper --bench compare` (or `cargo bench
//! --workspace --bench compare`, with the runtime's scenarios). Both servers
//! run on one multi-thread runtime with 2 worker threads, with their
//! clients: `CONNECTIONS` keep-alive HTTP/1.1 connections, each sending
//! `REQUESTS_PER_CONNECTION` requests one after another. The sides take
//! turns, the one going first swapping every round, for `ROUNDS` rounds,
//! after an untimed round each; the line printed has the medians:
//!
//! ```text
//! compare scenario=http_requests n=<requests> tethered_ns=<ns/request> baseline=axum_serve baseline_ns=<ns/request> ratio=<t/b> tethered_p50_us=… tethered_p99_us=… baseline_p50_us=… baseline_p99_us=…
//! compare scenario=http_requests_header_timeout …
//! ```
//!
//! `_ns` is wall time per request with every connection busy (the inverse
//! of throughput); `p50`/`p99` are the latencies of single requests, seen by
//! the clients. `http_requests` serves with the defaults; the second line,
//! with `Server::header_read_timeout` set (hyper then arms a timer for every
//! request head, which `axum::serve` does not). Set `COMPARE_SAMPLES=1` to
//! also print every round's sample to stderr, and
//! `COMPARE_ONLY=<name>,<name>` to run only those scenarios.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tethered::Scope;
use tethered_hyper::Server;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

const ROUNDS: usize = 9;
const CONNECTIONS: usize = 64;
const REQUESTS_PER_CONNECTION: usize = 200;

/// What a request costs on one side, in one round.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Wall time per request.
    per_request_ns: f64,
    p50_us: f64,
    p99_us: f64,
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

/// Sends `REQUESTS_PER_CONNECTION` requests on each of `CONNECTIONS` new
/// keep-alive connections to `addr`, all at once.
async fn load(addr: SocketAddr) -> Sample {
    // Connected first, so that the timing is of requests, not handshakes.
    let mut senders = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        senders.push(sender);
    }
    let started = Instant::now();
    let clients: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(REQUESTS_PER_CONNECTION);
                for _ in 0..REQUESTS_PER_CONNECTION {
                    let sent = Instant::now();
                    sender.ready().await.expect("ready");
                    let request = hyper::Request::get("/")
                        .header("host", "bench")
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let response = sender.send_request(request).await.expect("response");
                    assert!(response.status().is_success());
                    response.into_body().collect().await.expect("body");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(CONNECTIONS * REQUESTS_PER_CONNECTION);
    for client in clients {
        latencies.extend(client.await.expect("client"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_nanos() as f64 / 1e3;
    Sample {
        per_request_ns: elapsed.as_nanos() as f64 / latencies.len() as f64,
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

/// A running server, and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// The router served by `tethered-hyper`, in a scope that the stop stops;
/// with a timeout on reading request heads, or without (the default).
async fn tethered_server(header_read_timeout: Option<Duration>) -> Running {
    let (listener, addr) = listener().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = Server::new(listener).name("bench");
    if let Some(timeout) = header_read_timeout {
        server = server.header_read_timeout(timeout);
    }
    let done = tokio::spawn(async move {
        Scope::run(async |scope| {
            let server = scope.spawn(server.serve(app()));
            let _ = stopped.await;
            server.stop("bench over");
            server.join().await.unwrap().expect("no failure");
        })
        .await
        .expect("scope");
    });
    Running { addr, stop, done }
}

/// The router served by `axum::serve`, with the same `TCP_NODELAY` as
/// `tethered-hyper`'s listener sets.
async fn axum_server() -> Running {
    use axum::serve::ListenerExt;

    let (listener, addr) = listener().await;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("served");
    });
    Running { addr, stop, done }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `ROUNDS` rounds on each server, taking turns, and prints the
/// scenario's line.
fn compare(rt: &Runtime, scenario: &str, tethered: SocketAddr, axum: SocketAddr) {
    let round = |addr: SocketAddr| {
        rt.block_on(async move { tokio::spawn(load(addr)).await.expect("load") })
    };
    // Untimed: warm the allocator, the connection paths, the caches.
    round(tethered);
    round(axum);
    let (mut t, mut b) = (Vec::new(), Vec::new());
    for n in 0..ROUNDS {
        if n % 2 == 0 {
            t.push(round(tethered));
            b.push(round(axum));
        } else {
            b.push(round(axum));
            t.push(round(tethered));
        }
    }
    if std::env::var_os("COMPARE_SAMPLES").is_some() {
        eprintln!("  {scenario} tethered samples: {t:.1?}\n  baseline samples: {b:.1?}");
    }
    let medians = |samples: &[Sample]| {
        (
            median(samples.iter().map(|s| s.per_request_ns).collect()),
            median(samples.iter().map(|s| s.p50_us).collect()),
            median(samples.iter().map(|s| s.p99_us).collect()),
        )
    };
    let (t_ns, t_p50, t_p99) = medians(&t);
    let (b_ns, b_p50, b_p99) = medians(&b);
    println!(
        "compare scenario={scenario} n={} tethered_ns={t_ns:.1} baseline=axum_serve \
         baseline_ns={b_ns:.1} ratio={:.3} tethered_p50_us={t_p50:.1} tethered_p99_us={t_p99:.1} \
         baseline_p50_us={b_p50:.1} baseline_p99_us={b_p99:.1}",
        CONNECTIONS * REQUESTS_PER_CONNECTION,
        t_ns / b_ns,
    );
}

fn wanted(scenario: &str) -> bool {
    std::env::var("COMPARE_ONLY").map_or(true, |only| only.split(',').any(|name| name == scenario))
}

fn main() {
    let rt = runtime();
    let axum = rt.block_on(axum_server());
    let mut servers = vec![];
    // What a user gets by default, against what `axum::serve` does.
    if wanted("http_requests") {
        let tethered = rt.block_on(tethered_server(None));
        compare(&rt, "http_requests", tethered.addr, axum.addr);
        servers.push(tethered);
    }
    // With `header_read_timeout` set: hyper arms a timer for every request.
    if wanted("http_requests_header_timeout") {
        let tethered = rt.block_on(tethered_server(Some(Duration::from_secs(30))));
        compare(
            &rt,
            "http_requests_header_timeout",
            tethered.addr,
            axum.addr,
        );
        servers.push(tethered);
    }
    servers.push(axum);
    for server in servers {
        let _ = server.stop.send(());
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), server.done)
                .await
                .expect("the server stopped")
                .expect("the server task");
        });
    }
}
