// The same in a `Send` local scope, whose body is a boxed future.
use tethered::Scope;

async fn count() {
    let _ = Scope::run_local(|scope| {
        Box::pin(async {
            let inside = String::from("the body's");
            scope.spawn_local(async { inside.len() });
        })
    })
    .await;
}

fn main() {
    let _ = count();
}
