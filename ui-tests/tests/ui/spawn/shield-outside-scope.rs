// Outside a `#[scoped]` fn there is no scope for `shield!` to spawn into.
async fn flush() {}

async fn run() {
    tethered::shield!(flush());
}

fn main() {
    let _ = run();
}
