// `spawn!` and `shield!` of async blocks that never return, the forms
// people write first: a loop with no way out, waiting forever, a panic. The
// handles are of `!`, and the scope's `on_exit = cancel` ends the tasks.
use std::future::{self, pending};
use std::time::Duration;

use tethered::{Outcome, scoped};

#[scoped(on_exit = cancel)]
async fn run() {
    spawn!("heartbeat", async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    spawn!(async {
        let mut beats = 0u64;
        loop {
            beats += 1;
            tokio::time::sleep(Duration::from_millis(beats)).await;
        }
    });
    spawn!("waits", async { pending().await });
    spawn!(async { future::pending().await });
    let doomed = spawn!(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        panic!("never reached")
    });
    let outcome: Outcome<_> = doomed.cancel_and_wait("done").await;
    assert!(matches!(outcome, Outcome::Cancelled(_)));
    tokio::task::yield_now().await;
}

// Compiled, not run: cancellation does not reach a shield, so the scope
// would wait for it forever.
#[allow(dead_code)]
#[scoped]
async fn shielded() {
    shield!("idle", async move { std::future::pending().await });
    shield!(async {
        loop {
            tethered::stop_requested().await;
        }
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
