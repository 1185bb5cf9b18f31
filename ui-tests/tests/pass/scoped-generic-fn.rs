// A generic `#[scoped]` fn, with bounds inline and in a `where` clause.
use std::fmt::Debug;

use tethered::scoped;

#[scoped]
async fn both<A: Send + 'static, B>(a: A, b: B) -> (A, B)
where
    B: Debug + Send + 'static,
{
    let left = spawn!(async move { a });
    let right = spawn!("right", async move { b });
    (left.join().await.unwrap(), right.join().await.unwrap())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(both(1u8, "two").await, (1, "two"));
}
