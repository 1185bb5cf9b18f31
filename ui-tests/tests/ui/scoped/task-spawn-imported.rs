// `task::spawn` with `tokio::task` imported is still `tokio::spawn`.
use tethered::scoped;
use tokio::task;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    task::spawn(work());
}

fn main() {}
