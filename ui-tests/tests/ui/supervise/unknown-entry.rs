use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        chlid "worker" => worker(),
        child "other" => worker(),
    };
}

fn main() {}
