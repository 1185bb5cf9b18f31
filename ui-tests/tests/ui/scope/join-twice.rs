// `join` consumes the handle: a task's outcome is delivered once.
use tethered::Scope;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    Scope::run(async |scope| {
        let handle = scope.spawn(async { 1 });
        let first = handle.join().await;
        let second = handle.join().await;
        let _ = (first, second);
    })
    .await
    .unwrap();
}
