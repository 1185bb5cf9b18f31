// Blocking work started with tokio's `spawn_blocking` is not waited for by
// the scope; the fix is `spawn_blocking!`.
use tethered::scoped;

#[scoped]
async fn run() {
    tokio::task::spawn_blocking(|| 1 + 1);
}

fn main() {}
