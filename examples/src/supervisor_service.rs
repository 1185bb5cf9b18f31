//! A TCP line service run by a [`Supervisor`]: every connection is a
//! dynamic child, a flaky background job is restarted with backoff, and a
//! shielded flush writes a summary on the way out.
//!
//! ```text
//! supervisor `line-service`
//! ├── task `flaky-stats`            static, permanent: prints the counts every
//! │                                 `stats_every`, fails on its third report
//! ├── shield `flush`                waits for the stop, then writes a summary
//! ├── task `conn-127.0.0.1:40312`   dynamic: echoes lines upper-cased
//! └── task `conn-127.0.0.1:40318`   (one per connection, forgotten once closed)
//! ```
//!
//! The protocol is one line in, one line out: a line comes back
//! upper-cased, except `/stats`, answered with the supervisor's counts.
//! When the service stops, each connection stops reading, says `BYE` and
//! closes.
//!
//! [`run`] serves until `shutdown` resolves (the body returns) or until the
//! enclosing scope stops it (in `#[tethered::main]`, the first Ctrl-C),
//! then shuts the supervisor down in phases and returns the
//! [`ShutdownReport`]. [`demo`] plays three clients against it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tethered::{ScopeHandle, ShutdownReport, Supervisor, SupervisorError, SupervisorStats};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::sleep;

/// The supervisor's name (written out again in `supervise!`, which takes a
/// literal).
pub const NAME: &str = "line-service";

/// The line a connection sends when the service stops.
pub const BYE: &str = "BYE: the service is shutting down";

/// `flaky-stats` fails on this report, every time it runs.
pub const FAILS_ON_REPORT: u64 = 3;

/// What the service needs besides its listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often `flaky-stats` prints the counts. It fails on report
    /// [`FAILS_ON_REPORT`], so it crashes every `3 × stats_every`.
    pub stats_every: Duration,
    /// How long the shielded flush takes (a slow disk).
    pub flush_takes: Duration,
    /// Where the flush writes its summary line.
    pub summary_path: PathBuf,
}

impl Config {
    /// Reports every second (so a crash every 3 s), a flush of 200 ms.
    pub fn new(summary_path: impl Into<PathBuf>) -> Self {
        Config {
            stats_every: Duration::from_secs(1),
            flush_takes: Duration::from_millis(200),
            summary_path: summary_path.into(),
        }
    }
}

/// What the connections did, counted as they do it.
#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    open: AtomicU64,
    lines: AtomicU64,
}

impl Counts {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    fn add(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn summary(&self) -> String {
        format!(
            "{NAME}: served {} connections, echoed {} lines",
            Counts::get(&self.accepted),
            Counts::get(&self.lines)
        )
    }
}

/// How the service ended.
#[derive(Debug)]
pub struct Served {
    /// How many connections the listener accepted (`None` if the body was
    /// cancelled before it returned).
    pub accepted: Option<u64>,
    /// The supervisor's final counts.
    pub stats: SupervisorStats,
    /// How the shutdown went.
    pub report: ShutdownReport,
}

/// Serves line clients on `listener` until `shutdown` resolves or the
/// enclosing scope stops the service; returns how the shutdown went.
///
/// Fails only if `flaky-stats` needs more than 5 restarts within 10 s.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<Served, SupervisorError> {
    let counts = Arc::new(Counts::default());
    let supervised = tethered::supervise! {
        name: "line-service",
        strategy: one_for_one,
        intensity: 5 within "10s",
        shutdown: grace "2s" then cancel "1s",
        seed: 42,
        // Evaluated again for every restart.
        child "flaky-stats" (permanent, backoff "100ms".."5s", factor 2, jitter 0.1)
            => flaky_stats(counts.clone(), config.stats_every),
        body |sv| {
            let flush = flush(counts.clone(), config.flush_takes, config.summary_path.clone());
            if let Err(refused) = sv.shield("flush", flush) {
                eprintln!("flush not started: {refused}");
            }
            accept(&listener, sv, &counts, shutdown).await
        },
    }?;
    Ok(Served {
        accepted: supervised.value,
        stats: supervised.report.stats(),
        report: supervised.report,
    })
}

/// The body: accepts connections and spawns each one as a dynamic child,
/// until `shutdown` resolves or the supervisor is asked to stop.
async fn accept(
    listener: &TcpListener,
    sv: &Supervisor,
    counts: &Arc<Counts>,
    shutdown: impl Future<Output = ()>,
) -> u64 {
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little for some
                    // connections to close.
                    eprintln!("accept failed: {error}");
                    sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            _ = tethered::stop_requested() => break,
        };
        Counts::add(&counts.accepted);
        let connection = connection(stream, sv.clone(), counts.clone());
        if let Err(refused) = sv.spawn(format!("conn-{peer}"), connection) {
            // Shutting down already: the stream is dropped, which closes it.
            eprintln!("{peer} refused: {refused}");
        }
    }
    Counts::get(&counts.accepted)
}

/// One connection: echoes each line upper-cased (`/stats`: the
/// supervisor's counts) until the client hangs up or the service stops.
async fn connection(stream: TcpStream, sv: Supervisor, counts: Arc<Counts>) -> std::io::Result<()> {
    Counts::add(&counts.open);
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let ended = loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tethered::stop_requested() => {
                break writer.write_all(format!("{BYE}\n").as_bytes()).await;
            }
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()), // the client hung up
            Err(error) => break Err(error),
        };
        let reply = if line.trim() == "/stats" {
            stats_line(&sv.stats())
        } else {
            Counts::add(&counts.lines);
            line.to_uppercase()
        };
        if let Err(error) = writer.write_all(format!("{reply}\n").as_bytes()).await {
            break Err(error);
        }
    };
    counts.open.fetch_sub(1, Ordering::SeqCst);
    ended
}

/// The answer to `/stats`.
fn stats_line(stats: &SupervisorStats) -> String {
    format!(
        "live={} started={} completed={} failed={} restarted={}",
        stats.live, stats.started, stats.completed, stats.failed, stats.restarted
    )
}

/// Why `flaky-stats` fails.
#[derive(Debug)]
pub struct StatsSinkDown;

impl fmt::Display for StatsSinkDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stats sink went away")
    }
}

impl std::error::Error for StatsSinkDown {}

/// The static child: prints the counts every `every`, and fails on its
/// third report. The supervisor calls this again for every restart.
async fn flaky_stats(counts: Arc<Counts>, every: Duration) -> Result<(), StatsSinkDown> {
    for report in 1.. {
        tokio::select! {
            () = sleep(every) => {}
            _ = tethered::stop_requested() => return Ok(()),
        }
        if report == FAILS_ON_REPORT {
            return Err(StatsSinkDown);
        }
        println!(
            "stats: {} open, {} accepted, {} lines echoed",
            Counts::get(&counts.open),
            Counts::get(&counts.accepted),
            Counts::get(&counts.lines),
        );
    }
    Ok(())
}

/// The shield: waits for the stop, then writes the summary (slowly).
/// Cancellation does not reach it, and the shutdown waits for it.
async fn flush(counts: Arc<Counts>, takes: Duration, path: PathBuf) -> std::io::Result<()> {
    tethered::stop_requested().await;
    sleep(takes).await; // a slow disk
    let summary = counts.summary();
    tokio::fs::write(&path, format!("{summary}\n")).await?;
    println!("flush: wrote \"{summary}\" to {}", path.display());
    Ok(())
}

/// A line client, for [`demo`] and the tests.
#[derive(Debug)]
pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    /// Connects to the service.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let (reader, writer) = TcpStream::connect(addr).await?.into_split();
        Ok(Client {
            lines: BufReader::new(reader).lines(),
            writer,
        })
    }

    /// The client's own address (the service names the connection after it).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.writer.local_addr()
    }

    /// Sends a line and reads the answer.
    pub async fn ask(&mut self, line: &str) -> std::io::Result<String> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        self.next_line()
            .await?
            .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
    }

    /// Reads the next line from the service (`None`: it closed).
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        self.lines.next_line().await
    }
}

/// Plays three clients against the service at `addr`, waits for
/// `flaky-stats` to be restarted once, then stops `main` (as Ctrl-C does)
/// and reads each client's `BYE`.
pub async fn demo(addr: SocketAddr, main: ScopeHandle) -> std::io::Result<()> {
    let mut clients = Vec::new();
    for n in 1..=3 {
        let mut client = Client::connect(addr).await?;
        for line in [
            format!("hello from client {n}"),
            format!("bye from client {n}"),
        ] {
            let answer = client.ask(&line).await?;
            println!("client {n}: {line:?} -> {answer:?}");
        }
        clients.push(client);
    }
    loop {
        let stats = clients[0].ask("/stats").await?;
        if !stats.ends_with("restarted=0") {
            println!("client 1: \"/stats\" -> {stats:?}");
            break;
        }
        sleep(Duration::from_millis(250)).await;
    }
    println!("demo: stopping `main`, as Ctrl-C would");
    main.stop("the demo is over");
    for (n, client) in clients.iter_mut().enumerate() {
        while let Some(line) = client.next_line().await? {
            println!("client {}: got {line:?}", n + 1);
        }
        println!("client {}: closed", n + 1);
    }
    Ok(())
}
