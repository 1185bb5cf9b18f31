// A local child cannot borrow what the body declares: the body's locals
// are gone before the scope has joined its children.
use tethered::Scope;

async fn count() {
    let _ = Scope::run_local_non_send(async |scope| {
        let inside = String::from("the body's");
        scope.spawn_local(async { inside.len() });
    })
    .await;
}

fn main() {
    let _ = count();
}
