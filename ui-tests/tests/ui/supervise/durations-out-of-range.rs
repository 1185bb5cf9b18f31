use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        shutdown: grace "600000000000y",
        child "worker" (backoff "1s".."1.5ns") => worker(),
    };
}

fn main() {}
