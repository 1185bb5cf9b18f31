// A closure in the body is part of the scope: an escaping spawn in it is
// found too.
use tethered::scoped;

async fn work(n: u32) -> u32 {
    n
}

#[scoped]
async fn run() {
    let start = |n| tokio::spawn(work(n));
    let _ = start(1);
}

fn main() {}
