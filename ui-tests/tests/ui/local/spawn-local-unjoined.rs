// A local child's handle bound and never used.
#[tethered::scoped]
async fn lonely(words: &[&str]) {
    let handle = tethered::spawn_local!(async { words.len() });
}

fn main() {
    let _ = lonely(&[]);
}
