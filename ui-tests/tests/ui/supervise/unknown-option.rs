use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        strategi: one_for_all,
        child "worker" => worker(),
    };
}

fn main() {}
