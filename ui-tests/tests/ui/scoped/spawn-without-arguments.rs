// `spawn!` needs a future.
use tethered::scoped;

#[scoped]
async fn run() {
    spawn!();
}

fn main() {}
