// A `ScopeHandle` is `'static`: a child can hold it and start siblings, and
// the handles it returns are `'static` too, so they can move into a child.
use tethered::{Scope, ScopeHandle, TaskHandle};

fn start_sibling(scope: &ScopeHandle) -> TaskHandle<'static, u32> {
    scope
        .try_spawn_named("sibling", async { 7 })
        .expect("scope is open")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seen = Scope::run(async |scope| {
        let handle = scope.handle();
        let spawner = scope.spawn(async move {
            let sibling = start_sibling(&handle);
            let waiter = handle
                .try_spawn(async move { sibling.join().await.unwrap() })
                .expect("scope is open");
            waiter.join().await.unwrap()
        });
        spawner.join().await.unwrap()
    })
    .await
    .unwrap();
    assert_eq!(seen, 7);
}
