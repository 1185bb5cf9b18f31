// A handle bound and then forgotten is almost always a missing `.join()`.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    let handle = spawn!(work());
}

fn main() {}
