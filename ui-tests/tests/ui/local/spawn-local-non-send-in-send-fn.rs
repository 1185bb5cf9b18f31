// A `#[scoped]` fn's local children must be `Send` unless it says
// `send = false`.
use std::rc::Rc;

#[tethered::scoped]
async fn tally() {
    tethered::spawn_local!(async {
        let shared = Rc::new(1);
        tokio::task::yield_now().await;
        *shared
    });
}

fn main() {
    let _ = tally();
}
