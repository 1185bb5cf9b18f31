use tethered::supervise;

async fn run() {
    let _ = supervise! {
        name: "idle",
        strategy: one_for_all,
    };
}

fn main() {}
