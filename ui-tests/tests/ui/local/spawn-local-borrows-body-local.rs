// A local child cannot borrow what the body declares.
#[tethered::scoped]
async fn count() -> usize {
    let inside = String::from("the body's");
    tethered::spawn_local!(async { inside.len() }).join().await.unwrap()
}

fn main() {
    let _ = count();
}
