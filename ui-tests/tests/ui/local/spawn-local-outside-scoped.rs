// `spawn_local!` needs the scope of a `#[scoped]` fn.
async fn plain() {
    let _ = tethered::spawn_local!(async { 1 });
}

fn main() {
    let _ = plain();
}
