use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        intensity: 5 within "5 parsecs",
        shutdown: grace "0s" then cancel "10s",
        child "worker" (backoff "0s".."5s") => worker(),
    };
    let _ = supervise! {
        shutdown: cancel "0ms",
        child "worker" (backoff "1s".."1 fortnight") => worker(),
    };
}

fn main() {}
