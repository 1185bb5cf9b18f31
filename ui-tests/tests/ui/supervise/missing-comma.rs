use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        name: "svc"
        child "a" => worker()
        child "b" => worker(),
    };
}

fn main() {}
