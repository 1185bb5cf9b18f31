use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        intensity: 0 within "10s",
        child "worker" => worker(),
    };
}

fn main() {}
