// A fn nested in a `#[scoped]` body is an item of its own, outside the
// scope: `spawn!` there has no scope to spawn into.
use tethered::{scoped, spawn};

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    async fn helper() {
        spawn!(work());
    }
    helper().await;
}

fn main() {}
