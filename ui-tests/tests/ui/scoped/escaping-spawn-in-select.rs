// The tokens of another macro (`tokio::select!`) are searched for escaping
// spawns too.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    tokio::select! {
        _ = tokio::spawn(work()) => {}
        _ = work() => {}
    }
}

fn main() {}
