use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        child "forever" (forever) => worker(),
        child "capitalised" (Transient) => worker(),
    };
}

fn main() {}
