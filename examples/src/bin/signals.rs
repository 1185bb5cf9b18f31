//! A program for the signal tests (`tests/main_signals.rs`): `#[tethered::main]`
//! with one task whose behaviour on stop and cancel the first argument picks.
//!
//! * `polite`: ends as soon as it is asked to stop;
//! * `stubborn`: ignores the stop, so it is cancelled after the grace period;
//! * `stuck`: a shield that never ends, so the process gives up after the
//!   cancel timeout and exits with 1;
//! * `blocked`: a task that blocks the runtime's only thread in a system
//!   call, so nothing on the runtime runs any more: the signal and the exit
//!   deadline must still be handled;
//! * `over-budget`: a supervisor whose shutdown may take longer than
//!   `main` gives it, which says so at start.

use std::io::Write;
use std::time::Duration;

#[tethered::main(grace = "300ms", cancel_timeout = "300ms", flavor = "current_thread")]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "polite" => {
            spawn!("polite", async {
                let reason = tethered::stop_requested().await;
                println!("stop: {reason}");
            });
        }
        "stubborn" => {
            spawn!("stubborn", async {
                struct Report;
                impl Drop for Report {
                    fn drop(&mut self) {
                        if let Some(reason) = tethered::current().cancel_reason() {
                            println!("cancelled: {reason}");
                        }
                    }
                }
                let _report = Report;
                std::future::pending::<()>().await
            });
        }
        "over-budget" => {
            spawn!("jobs", async {
                let _ = tethered::Supervisor::builder()
                    .name("jobs")
                    .grace(Duration::from_secs(5))
                    .cancel_timeout(Duration::from_secs(10))
                    .run(async |_| {
                        tethered::stop_requested().await;
                    })
                    .await;
            });
        }
        "blocked" => {
            spawn!("blocked", async {
                // Once the program has said it is ready.
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::thread::sleep(Duration::from_secs(60));
            });
        }
        _ => {
            shield!("stuck", std::future::pending::<()>());
        }
    }
    // Let the task start before announcing that signals can be sent.
    tokio::time::sleep(Duration::from_millis(10)).await;
    println!("ready");
    std::io::stdout().flush().expect("stdout");
}
