// A cleanup's value has nowhere to go: it returns `()` or `Result<(), E>`.
use tethered::Scope;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = Scope::run(async |scope| {
        scope.defer(async { 7u8 });
    })
    .await;
}
