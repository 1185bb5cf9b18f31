// A task handle borrows its scope, so the body cannot return it: the task
// would outlive the scope that joins it.
use tethered::Scope;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let handle = Scope::run(async |scope| scope.spawn(async { 1 })).await;
    drop(handle);
}
