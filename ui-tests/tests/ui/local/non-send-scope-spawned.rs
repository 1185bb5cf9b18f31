// A non-`Send` local scope's future is `!Send`, whatever its children
// hold: it cannot be spawned on the multi-thread runtime (run it on a
// current-thread runtime, a `LocalSet` or a `LocalRuntime`).
use tethered::Scope;

async fn count() -> usize {
    Scope::run_local_non_send(async |scope| scope.spawn_local(async { 3 }).join().await.unwrap())
        .await
        .unwrap()
}

fn main() {
    let _ = tokio::spawn(count());
}
