// `#[scoped]` fns calling each other: each call is a child scope of the
// caller's, and spawns in it go to it.
use tethered::scoped;

#[scoped(name = "leaf")]
async fn leaf(n: u32) -> u32 {
    spawn!(async move { n * 2 }).join().await.unwrap()
}

#[scoped]
async fn branch(n: u32) -> u32 {
    let left = leaf(n).await;
    let right = spawn!(leaf(n + 1));
    left + right.join().await.unwrap()
}

#[scoped]
async fn root() -> u32 {
    branch(1).await + branch(10).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(root().await, 6 + 42);
}
