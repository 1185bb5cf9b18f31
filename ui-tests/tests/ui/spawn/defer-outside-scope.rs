// Outside a `#[scoped]` fn there is no scope for `defer!` to register on.
use tethered::defer;

async fn run() {
    defer!(async move {});
}

fn main() {
    let _ = run();
}
