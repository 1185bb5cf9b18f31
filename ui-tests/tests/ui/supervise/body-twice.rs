use tethered::supervise;

async fn run() {
    let _ = supervise! {
        body |_| 1,
        body |_| 2,
    };
}

fn main() {}
