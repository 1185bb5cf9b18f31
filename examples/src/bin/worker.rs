//! `worker`: a job queue (SQLite, or PostgreSQL for many workers) worked
//! under a supervisor, stopped cleanly by SIGINT, SIGTERM or SIGHUP. The
//! logic is in `tethered_examples::worker`.
//!
//! ```text
//! worker enqueue N [--db PATH|URL] [--init]
//! worker run [--db PATH|URL] [--init] [--concurrency N] [--grace DUR] [--work-ms N]
//!            [--slow-every N] [--slow-ms N] [--exit-when-empty] [--tree]
//! worker cancel JOB --reason TEXT --db URL
//! worker demo
//! ```
//!
//! `main`'s own grace is long (60 s): the supervisor's `--grace` (at most
//! 50 s) decides when jobs in flight are cancelled, and `main` only waits
//! for it.

use std::process::ExitCode;

#[tethered::main(grace = "60s", cancel_timeout = "30s")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tethered_examples::worker::main(args).await
}
