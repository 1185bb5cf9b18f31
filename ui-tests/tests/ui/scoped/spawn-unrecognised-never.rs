// A block whose value diverges in a way `spawn!` does not recognise (it
// awaits an async fn of `!`): its output is unknown when `spawn!` needs it.
use std::time::Duration;

use tethered::scoped;

async fn serve_forever() -> ! {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[scoped]
async fn run() {
    spawn!("server", async { serve_forever().await });
}

fn main() {}
