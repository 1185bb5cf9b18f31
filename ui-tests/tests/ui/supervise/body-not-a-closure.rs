use tethered::supervise;

async fn run() {
    let _ = supervise! {
        body {
            tokio::task::yield_now().await;
        },
    };
    let _ = supervise! {
        body |sv, extra| { let _ = (sv, extra); },
    };
}

fn main() {}
