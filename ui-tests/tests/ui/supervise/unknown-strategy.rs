use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        strategy: one_for_everyone,
        child "worker" => worker(),
    };
    let _ = supervise! {
        strategy: OneForAll,
        child "worker" => worker(),
    };
}

fn main() {}
