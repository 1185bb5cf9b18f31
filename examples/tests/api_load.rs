//! The `api` program under load, on loopback: 200 keep-alive connections
//! send a few thousand requests (some slow), SIGTERM arrives mid-load, and
//! the drain is checked against what the clients saw. A second test: a
//! client that goes away mid-request, whose handler's shield still
//! finishes; a third: a second SIGTERM during the drain, after which the
//! service's report and the audit line are still printed.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const CONNECTIONS: usize = 200;
/// Responses received before the SIGTERM.
const STOP_AFTER: u64 = 2_500;
const GRACE: Duration = Duration::from_secs(2);
const CANCEL_TIMEOUT: Duration = Duration::from_secs(1);
/// A slow request: far longer than the load and the grace together.
const SLOW_MS: u64 = 20_000;
const MEDIUM_MS: u64 = 300;

/// The `api` program, killed if the test ends before it does.
struct Api {
    child: Child,
    addr: SocketAddr,
    /// Its stderr lines, each with when it was read.
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Api {
    fn start() -> Api {
        let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--grace",
                "2s",
                "--cancel-timeout",
                "1s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the api program");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("the api did not start: {line:?}"))
            .parse()
            .expect("an address");
        child.stdout = Some(stdout.into_inner());
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = BufReader::new(child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in pipe.lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        Api {
            child,
            addr,
            stderr,
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// When the program said it drains.
    fn draining_since(&self) -> Option<Instant> {
        let lines = self.stderr.lock().unwrap();
        lines
            .iter()
            .find(|(_, line)| line.starts_with("api: draining"))
            .map(|(at, _)| *at)
    }

    /// Waits for the program to exit: its exit code, stdout and stderr.
    fn wait(mut self) -> (Option<i32>, String, String) {
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        let code = self.child.wait().expect("wait").code();
        // The reader thread has seen the end of stderr once the child is
        // gone; give it a moment to store the last line.
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr.lock().unwrap();
        let stderr = stderr.iter().map(|(_, line)| format!("{line}\n")).collect();
        (code, stdout, stderr)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How one request went, as its client saw it.
#[derive(Debug, Clone)]
struct Sent {
    id: u64,
    ms: u64,
    sent: Instant,
    answered: Option<Instant>,
    /// The status, or the error that ended the request.
    outcome: Result<u16, String>,
}

/// The request a connection sends `k`-th: mostly fast, some medium, a few
/// slow, in a fixed pattern.
fn work_ms(connection: usize, k: usize) -> u64 {
    match (connection * 7 + k * 13) % 50 {
        0 => SLOW_MS,
        1..=5 => MEDIUM_MS,
        _ => 1,
    }
}

async fn request(
    sender: &mut http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|error| error.to_string())?;
    let request = hyper::Request::get(path)
        .header("host", "api")
        .body(Empty::new())
        .expect("a request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?;
    Ok((status, body.to_bytes()))
}

/// What one client connection did: its requests, and whether a connection
/// it opened after its first one closed was served.
struct ClientRun {
    sent: Vec<Sent>,
    /// Connections opened after the first closed, each with when, and
    /// whether they got an answer.
    reconnects: Vec<(Instant, bool)>,
}

async fn client(
    connection: usize,
    addr: SocketAddr,
    ids: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    stop_sent: Arc<Mutex<Option<Instant>>>,
    start: Arc<tokio::sync::Barrier>,
) -> ClientRun {
    let mut run = ClientRun {
        sent: Vec::new(),
        reconnects: Vec::new(),
    };
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect before the stop");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(driver);
    // Every connection open before the load begins.
    start.wait().await;
    for k in 0.. {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let ms = work_ms(connection, k);
        let sent = Instant::now();
        let outcome = request(&mut sender, &format!("/work/{ms}/{id}")).await;
        let ok = outcome.is_ok();
        run.sent.push(Sent {
            id,
            ms,
            sent,
            answered: ok.then(Instant::now),
            outcome: outcome.map(|(status, _)| status),
        });
        if !ok {
            break;
        }
        answered.fetch_add(1, Ordering::Relaxed);
    }
    // The connection was closed: by the drain, if the stop was sent. A new
    // one must not be served once the server drains.
    if stop_sent.lock().unwrap().is_some() {
        let at = Instant::now();
        let served = match TcpStream::connect(addr).await {
            Err(_) => false,
            Ok(stream) => match http1::handshake(TokioIo::new(stream)).await {
                Err(_) => false,
                Ok((mut sender, driver)) => {
                    tokio::spawn(driver);
                    let attempt = request(&mut sender, "/");
                    matches!(
                        tokio::time::timeout(Duration::from_secs(5), attempt).await,
                        Ok(Ok(_))
                    )
                }
            },
        };
        run.reconnects.push((at, served));
    }
    run
}

/// The server's counts, from the report's `requests:` line.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    started: u64,
    completed: u64,
    failed: u64,
    disconnected: u64,
    cancelled: u64,
    still_running: u64,
}

fn counts(report: &str) -> Counts {
    let line = report
        .lines()
        .find(|line| line.starts_with("requests: "))
        .unwrap_or_else(|| panic!("no `requests:` line in:\n{report}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .map(|word| word.parse().unwrap())
        .collect();
    let [
        started,
        completed,
        failed,
        disconnected,
        cancelled,
        still_running,
    ] = numbers[..]
    else {
        panic!("unexpected line: {line}")
    };
    Counts {
        started,
        completed,
        failed,
        disconnected,
        cancelled,
        still_running,
    }
}

/// The requests the report names as cancelled: id → (age, reason).
fn cancelled(report: &str) -> BTreeMap<u64, (Duration, String)> {
    report
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().strip_prefix("GET /work/")?;
            let (path, rest) = line.split_once(" from ")?;
            let id = path.split('/').nth(1)?.parse().ok()?;
            let (_, rest) = rest.split_once(": cancelled after ")?;
            let (age, reason) = rest.split_once(": ")?;
            let age = parse_age(age);
            Some((id, (age, reason.to_owned())))
        })
        .collect()
}

/// A duration as `Debug` prints it: `2.317s`, `950ms`.
fn parse_age(text: &str) -> Duration {
    if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_secs_f64(ms.parse::<f64>().unwrap() / 1e3)
    } else if let Some(s) = text.strip_suffix('s') {
        Duration::from_secs_f64(s.parse().unwrap())
    } else {
        panic!("an age: {text}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_request_and_reports_the_ones_it_cancels() {
    let api = Api::start();
    let ids = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let stop_sent = Arc::new(Mutex::new(None));
    let start = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            tokio::spawn(client(
                connection,
                api.addr,
                ids.clone(),
                answered.clone(),
                stop_sent.clone(),
                start.clone(),
            ))
        })
        .collect();
    start.wait().await;
    let load_began = Instant::now();
    while answered.load(Ordering::Relaxed) < STOP_AFTER {
        assert!(
            load_began.elapsed() < Duration::from_secs(60),
            "the load did not reach {STOP_AFTER} answers in a minute"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = Instant::now();
    *stop_sent.lock().unwrap() = Some(stopped);
    api.terminate();

    let mut runs = Vec::new();
    for client in clients {
        runs.push(client.await.expect("a client"));
    }
    let draining_since = api.draining_since();
    let (code, report, stderr) = tokio::task::spawn_blocking(move || api.wait())
        .await
        .unwrap();
    let took = stopped.elapsed();

    // The transcript, for the record (`--nocapture`).
    println!("--- api stdout ---\n{report}--- api stderr ---\n{stderr}---");
    assert_eq!(code, Some(0), "exit code; stderr:\n{stderr}");
    assert!(
        took <= GRACE + CANCEL_TIMEOUT + Duration::from_secs(2),
        "exited {took:?} after SIGTERM"
    );
    let draining_since = draining_since.expect("the api said it drains");

    let sent: Vec<&Sent> = runs.iter().flat_map(|run| &run.sent).collect();
    let ok: Vec<&&Sent> = sent.iter().filter(|s| s.outcome == Ok(200)).collect();
    let not_ok: Vec<&&Sent> = sent.iter().filter(|s| s.outcome != Ok(200)).collect();
    let in_flight_finished = ok
        .iter()
        .filter(|s| s.sent < stopped && s.answered.is_some_and(|at| at > stopped))
        .count();
    let counts = counts(&report);
    let cut = cancelled(&report);
    println!(
        "clients: {} connections, {} requests sent, {} answered 200 ({} of them in flight at \
         the SIGTERM), {} not answered; server: {counts:?}; drain took {took:?}",
        CONNECTIONS,
        sent.len(),
        ok.len(),
        in_flight_finished,
        not_ok.len(),
    );

    // Nothing failed, nothing outlived the drain.
    assert!(sent.len() as u64 >= STOP_AFTER);
    assert!(
        not_ok.iter().all(|s| s.outcome.is_err()),
        "only 200s or cut connections"
    );
    assert_eq!(
        (counts.failed, counts.disconnected, counts.still_running),
        (0, 0, 0)
    );
    // Every request the server started was answered 200 or cancelled, and
    // the report names each one cancelled.
    assert_eq!(counts.completed, ok.len() as u64, "200s the clients got");
    assert_eq!(counts.started, counts.completed + counts.cancelled);
    assert_eq!(
        cut.len() as u64,
        counts.cancelled,
        "a line per cancelled request"
    );
    let failed_ids: BTreeSet<u64> = not_ok.iter().map(|s| s.id).collect();
    for (id, (age, reason)) in &cut {
        assert!(
            failed_ids.contains(id),
            "request {id} was cancelled, yet answered"
        );
        let request = sent.iter().find(|s| s.id == *id).unwrap();
        assert_eq!(request.ms, SLOW_MS, "only slow requests outlive the grace");
        // (It may have been sent just after the SIGTERM: the signal takes
        // a moment to reach the server.)
        assert!(
            *age >= GRACE,
            "request {id} cancelled after {age:?}, before the grace"
        );
        assert!(
            reason.contains("still running when the shutdown's grace of 2s ran out")
                && reason.contains("received SIGTERM"),
            "request {id}: {reason}"
        );
    }
    // The slow requests in flight were all cut, and named.
    let slow_cut: BTreeSet<u64> = not_ok
        .iter()
        .filter(|s| s.ms == SLOW_MS && s.sent + Duration::from_millis(500) < stopped)
        .map(|s| s.id)
        .collect();
    assert!(!slow_cut.is_empty(), "the load had slow requests in flight");
    for id in &slow_cut {
        assert!(
            cut.contains_key(id),
            "slow request {id} was cut but not reported"
        );
    }
    // What the clients saw fail without the server naming it, the server
    // never started: it was sent as the connections closed for the drain.
    for request in not_ok.iter().filter(|s| !cut.contains_key(&s.id)) {
        assert!(
            request.sent + Duration::from_secs(1) >= stopped,
            "request {} failed {:?} before the stop, unreported",
            request.id,
            stopped - request.sent
        );
    }
    // No connection was served once the drain began.
    let reconnects: Vec<&(Instant, bool)> = runs.iter().flat_map(|run| &run.reconnects).collect();
    let late_served = reconnects
        .iter()
        .filter(|(at, served)| *at > draining_since && *served)
        .count();
    assert_eq!(late_served, 0, "connections served after the drain began");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_request_cancels_its_handler_and_its_audit_shield_finishes() {
    let api = Api::start();
    // An order's audit record takes 200 ms to write; the client leaves at
    // once.
    let stream = TcpStream::connect(api.addr).await.unwrap();
    let (mut sender, driver) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    let driver = tokio::spawn(driver);
    let order = hyper::Request::post("/orders/42")
        .header("host", "api")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let pending = tokio::spawn(async move { sender.send_request(order).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pending.abort();
    driver.abort();
    // Stopped while the record is being written: the drain waits for it.
    api.terminate();
    let (code, report, stderr) = tokio::task::spawn_blocking(move || api.wait())
        .await
        .unwrap();
    println!("--- api stdout ---\n{report}--- api stderr ---\n{stderr}---");
    assert_eq!(code, Some(0), "exit code; stderr:\n{stderr}");
    let counts = counts(&report);
    assert_eq!((counts.started, counts.disconnected), (1, 1), "{report}");
    assert!(
        report.contains("api: audit records written: 1,"),
        "the shield finished:\n{report}"
    );
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("api: order 42 cut short:")
                && line
                    .contains("disconnected: the client went away before the response was sent")),
        "the handler's reason is the disconnect:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_still_prints_the_services_report() {
    let api = Api::start();
    // A slow request in flight, which the grace (2 s) would wait for.
    let stream = TcpStream::connect(api.addr).await.unwrap();
    let (mut sender, driver) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    let driver = tokio::spawn(driver);
    let slow = hyper::Request::get(format!("/work/{SLOW_MS}/1"))
        .header("host", "api")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let pending = tokio::spawn(async move { sender.send_request(slow).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.terminate();
    let waited = Instant::now();
    while api.draining_since().is_none() {
        assert!(waited.elapsed() < Duration::from_secs(10), "never drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The second signal: no more waiting for the grace.
    api.terminate();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || api.wait())
        .await
        .unwrap();
    println!("--- api stdout ---\n{stdout}--- api stderr ---\n{stderr}---");
    // A clean cancellation, as `#[tethered::main]` counts it.
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("api: cut short before the server reported; the service's shutdown:"),
        "{stdout}"
    );
    assert!(stdout.contains("supervisor `service`"), "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|line| line.starts_with("api: audit records written: ")),
        "{stdout}"
    );
    pending.abort();
    driver.abort();
}
