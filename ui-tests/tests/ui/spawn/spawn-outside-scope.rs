// Outside a `#[scoped]` fn there is no scope for `spawn!` to spawn into.
use tethered::spawn;

async fn work() -> u32 {
    1
}

async fn run() {
    spawn!(work());
}

fn main() {
    let _ = run();
}
