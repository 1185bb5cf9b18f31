// `tokio::spawn` starts a task that nothing joins or cancels: inside a scope
// it would escape it.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    tokio::spawn(work());
}

fn main() {}
