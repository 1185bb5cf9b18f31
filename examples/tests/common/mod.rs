//! Helpers shared by the `worker` binary's tests.
//! Each test binary uses only part of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use rusqlite::Connection;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tethered_examples::worker::Summary;

/// The `worker` binary under test.
pub(crate) const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// `worker enqueue n --db …`, which must succeed.
pub(crate) fn enqueue(db: &TempDb, n: u32) {
    let out = Command::new(WORKER)
        .args(["enqueue", &n.to_string(), "--db", &db.arg()])
        .output()
        .expect("run worker enqueue");
    assert!(out.status.success(), "enqueue failed: {out:?}");
}

/// Starts `worker run --db … extra…`; returns it, its stderr, and the
/// first line it wrote there (`… running on …` once it runs).
pub(crate) fn spawn_run(db: &TempDb, extra: &[&str]) -> (Child, BufReader<ChildStderr>, String) {
    let mut child = Command::new(WORKER)
        .args(["run", "--db", &db.arg()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start worker");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    (child, stderr, line)
}

/// Sends `signal` (`-TERM`, `-KILL`, …) to `child`.
pub(crate) fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {} failed", child.id());
}

/// A database path of its own, in a directory removed at the end.
pub(crate) struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    pub(crate) fn new(test: &str) -> TempDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tethered-worker-{test}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDb { dir }
    }

    /// The directory the database lives in.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("queue.sqlite3")
    }

    pub(crate) fn arg(&self) -> String {
        self.path().display().to_string()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits for the worker, checks it exited 0, returns its summary.
pub(crate) fn finish(child: Child, stderr: BufReader<ChildStderr>) -> Summary {
    finish_with_stderr(child, stderr).0
}

/// Waits for the worker, checks it exited 0, returns its summary and the
/// rest of what it wrote on stderr.
pub(crate) fn finish_with_stderr(
    child: Child,
    mut stderr: BufReader<ChildStderr>,
) -> (Summary, String) {
    let out = child.wait_with_output().expect("wait for worker");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "worker exited with {}: {stdout}{rest}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    let summary = Summary::parse(line)
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}; stderr: {rest}"));
    (summary, rest)
}

/// The single number `sql` selects (0 when it is NULL).
pub(crate) fn count(db: &Path, sql: &str) -> i64 {
    let conn = Connection::open(db).expect("open the queue");
    conn.query_row(sql, [], |row| row.get::<_, Option<i64>>(0))
        .expect("count")
        .unwrap_or(0)
}

/// splitmix64: a tiny deterministic generator for the moments tests signal at.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A connection to the PostgreSQL database at `url`, retried for up to
/// 20 s (the server may be restarting), its connection driven by a task.
pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let started = Instant::now();
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot connect to {url}: {error}"),
        }
    }
}

/// A current-thread runtime with time and I/O, for a test that drives
/// async code (a PostgreSQL client, say) from a plain `#[test]`.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}
