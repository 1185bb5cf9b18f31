use tethered::supervise;

async fn count() -> u32 {
    42
}

async fn run() {
    let _ = supervise! {
        child "count" => count(),
    };
}

fn main() {}
