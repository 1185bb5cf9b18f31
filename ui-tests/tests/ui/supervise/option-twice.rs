use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        strategy: one_for_all,
        seed: 1,
        strategy: rest_for_one,
        child "worker" (transient, backoff "1s".."5s", permanent, backoff none) => worker(),
    };
}

fn main() {}
