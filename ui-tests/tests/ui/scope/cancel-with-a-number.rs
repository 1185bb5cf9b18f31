// A cancel reason is a message, a `CancelKind` or a `CancelReason`.
use tethered::Scope;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = Scope::run(async |scope| {
        let task = scope.spawn(std::future::pending::<()>());
        task.cancel(503);
    })
    .await;
}
