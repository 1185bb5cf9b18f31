// A `Send` local scope takes only `Send` children: an `Rc` held across an
// `.await` is refused, with the scope that takes it named.
use std::rc::Rc;
use tethered::Scope;

async fn count() {
    let _ = Scope::run_local(|scope| {
        Box::pin(async {
            scope.spawn_local(async {
                let shared = Rc::new(1);
                tokio::task::yield_now().await;
                *shared
            });
        })
    })
    .await;
}

fn main() {
    let _ = count();
}
