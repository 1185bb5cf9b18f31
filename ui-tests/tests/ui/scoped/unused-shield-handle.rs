// The same for a shielded child's handle.
use tethered::scoped;

async fn flush() {}

#[scoped]
async fn run() {
    let flushing = shield!("flush", flush());
}

fn main() {}
