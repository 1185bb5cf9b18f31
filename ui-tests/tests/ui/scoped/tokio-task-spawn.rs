// The same escape through its other path, `tokio::task::spawn`.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    tokio::task::spawn(work());
}

fn main() {}
