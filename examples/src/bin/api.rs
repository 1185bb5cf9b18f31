//! `api`: an HTTP service (axum, served by `tethered-hyper`) with a cache
//! refreshed on a schedule, drained in phases on SIGTERM or Ctrl-C. The
//! logic is in `tethered_examples::api`.
//!
//! ```text
//! api [--addr ADDR] [--grace DUR] [--cancel-timeout DUR] [--refresh DUR]
//! ```
//!
//! `main`'s own grace is long (60 s): the server's `--grace` decides when
//! requests in flight are cancelled, and `main` only waits for it.

use std::process::ExitCode;

#[tethered::main(grace = "60s", cancel_timeout = "30s")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tethered_examples::api::main(args).await
}
