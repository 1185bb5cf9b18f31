// A local child's handle borrows its scope: it cannot be returned from
// the body.
use tethered::Scope;

async fn escape() {
    let data = vec![1, 2, 3];
    let _handle = Scope::run_local_non_send(async |scope| {
        scope.spawn_local(async { data.len() })
    })
    .await;
}

fn main() {
    let _ = escape();
}
