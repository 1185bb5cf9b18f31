// A `!Send` future goes to `spawn_local`, not to `spawn`: `Scope::spawn`
// still needs `Send + 'static`.
use std::rc::Rc;
use tethered::Scope;

async fn count() {
    let _ = Scope::run_local_non_send(async |scope| {
        let shared = Rc::new(1);
        scope.spawn(async move { *shared });
    })
    .await;
}

fn main() {
    let _ = count();
}
