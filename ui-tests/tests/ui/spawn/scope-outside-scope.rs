// Outside a `#[scoped]` fn, `scope!()` names nothing.
async fn run() {
    tethered::scope!().cancel("done");
}

fn main() {
    let _ = run();
}
