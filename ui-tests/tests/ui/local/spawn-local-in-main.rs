// `#[tethered::main]`'s body holds no local children.
#[tethered::main]
async fn main() {
    let words = ["a", "b"];
    let _ = tethered::spawn_local!(async { words.len() }).join().await;
}
