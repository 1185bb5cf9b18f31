//! The `cancel_tree` demo: a small task tree in which one worker fails.
//!
//! ```text
//! cargo run -p tethered-examples --example cancel_tree
//! ```
//!
//! What happens (the tree and its timings are in `examples/src/demo.rs`):
//!
//! 1. `ingest` starts `fetcher`, `parser`, `indexer` (which runs a nested
//!    scope `index` with two shards) and a shield, `flush`.
//! 2. After 150 ms `parser` fails. That cancels `ingest`, and everything in
//!    it learns why. On stderr, `tracing` shows the failure (WARN,
//!    `tethered::task`) and the one cancellation that started the cascade
//!    (INFO, `tethered::cancel`); the inherited ones are at DEBUG.
//! 3. While cancellation is under way, an observer prints `tethered::tree()`:
//!    `indexer` is still there, because its nested scope is running its
//!    cleanup, and so is `flush`, which was asked to stop, not cancelled, and
//!    is writing its pending batches.
//! 4. Once everything has ended, each task's fate is printed: the reason
//!    chain, with the source line of every link, and the `ScopeError`.

use std::io::IsTerminal;

use tethered_examples::demo;

#[tokio::main]
async fn main() {
    // Cancellations (`tethered::cancel`, INFO for the one that starts a
    // cascade) and failures (`tethered::task`, WARN) go to stderr.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();

    let report = demo::run(|tree| {
        println!("== tethered::tree() while `ingest` is cancelling ==");
        // `indexer`: cancelled, but its nested scope `index` is in its
        // cleanup, so it is not gone yet. `flush`: a shield, asked to stop,
        // still writing. `fetcher`, `parser` and the shards are gone.
        println!("{tree}");
    })
    .await;

    // Who ended each task and why (the reason chain reads outermost first:
    // a shard was cancelled by `index`, because `indexer` was, because
    // `parser` failed), the cleanups, and the scope's error.
    println!("{report}");
}
