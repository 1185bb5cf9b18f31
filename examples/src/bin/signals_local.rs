//! The signal tests' program (`tests/main_signals.rs`) on a `LocalRuntime`:
//! `#[tethered::main(flavor = "local")]`, whose root scope holds a local
//! child that keeps an `Rc` (`!Send`) across its `.await`s. The first
//! argument picks how it takes the stop:
//!
//! * `polite`: ends as soon as it is asked to stop;
//! * `stubborn`: ignores the stop, so it is cancelled after the grace period.

use std::io::Write;
use std::rc::Rc;

#[tethered::main(grace = "300ms", cancel_timeout = "300ms", flavor = "local")]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let shared = Rc::new(mode.clone());
    match mode.as_str() {
        "polite" => {
            spawn_local!("polite", async move {
                let reason = tethered::stop_requested().await;
                println!("stop ({shared}): {reason}");
            });
        }
        _ => {
            spawn_local!("stubborn", async move {
                struct Report(Rc<String>);
                impl Drop for Report {
                    fn drop(&mut self) {
                        if let Some(reason) = tethered::current().cancel_reason() {
                            println!("cancelled ({}): {reason}", self.0);
                        }
                    }
                }
                let _report = Report(shared);
                std::future::pending::<()>().await
            });
        }
    }
    // Let the child start before announcing that signals can be sent.
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    println!("ready");
    std::io::stdout().flush().expect("stdout");
}
