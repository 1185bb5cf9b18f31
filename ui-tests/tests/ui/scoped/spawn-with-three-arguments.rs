// `spawn!` takes a future, or a name and a future.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    spawn!("worker", work(), work());
}

fn main() {}
