// The same for blocking work's handle.
use tethered::scoped;

#[scoped]
async fn run() {
    let hashing = spawn_blocking!(|| (1..=1000u64).sum::<u64>());
}

fn main() {}
