// A `#[scoped]` fn may borrow a longer-lived scope and spawn into it: that
// task outlives the fn's own scope, and the outer scope joins it.
use tethered::{Scope, TaskHandle, scoped};

#[scoped]
async fn start<'o>(outer: &'o Scope, n: u32) -> TaskHandle<'o, u32> {
    let local = spawn!(async move { n });
    let n = local.join().await.unwrap();
    outer.spawn(async move { n + 1 })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let value = Scope::run(async |outer| {
        let handle = start(outer, 41).await;
        handle.join().await.unwrap()
    })
    .await
    .unwrap();
    assert_eq!(value, 42);
}
