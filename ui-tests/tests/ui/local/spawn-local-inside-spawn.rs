// A spawned task cannot reach its scope to start local children, nor can
// a local child (it outlives every borrow of the scope).
#[tethered::scoped]
async fn nested(words: &[&str]) {
    tethered::spawn!(async {
        tethered::spawn_local!(async { 1 });
    });
    tethered::spawn_local!(async {
        tethered::spawn!(async { words.len() });
    });
}

fn main() {
    let _ = nested(&[]);
}
