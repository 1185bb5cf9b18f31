// tethered's macros inside `tokio::select!` in a scoped body are rewritten
// like any other.
use std::time::Duration;

use tethered::scoped;

#[scoped]
async fn race() -> &'static str {
    let slow = spawn!("slow", async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "slow"
    });
    let answer = tokio::select! {
        outcome = spawn!("fast", async { "fast" }).join() => outcome.unwrap(),
        outcome = spawn_blocking!(|| "blocking").join() => outcome.unwrap(),
        _ = tokio::time::sleep(Duration::from_secs(60)) => {
            assert_eq!(scope!().name(), Some("race"));
            "none"
        }
    };
    slow.cancel("have an answer");
    answer
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let answer = race().await;
    assert!(answer == "fast" || answer == "blocking", "{answer}");
}
