use tethered::supervise;

fn worker() -> u32 {
    42
}

async fn run() {
    let _ = supervise! {
        child "worker" => worker(),
    };
}

fn main() {}
