// `spawn_local` escapes the scope too, and tethered has no local tasks.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    tokio::task::spawn_local(work());
}

fn main() {}
