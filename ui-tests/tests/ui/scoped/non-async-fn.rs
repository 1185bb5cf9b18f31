// A scope is awaited, so it goes on an `async fn`.
use tethered::scoped;

#[scoped]
fn run() {}

fn main() {
    run();
}
