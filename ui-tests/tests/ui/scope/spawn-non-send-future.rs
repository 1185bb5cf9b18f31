// Children are tokio tasks that may run on any worker thread: a future that
// holds an `Rc` across an `.await` cannot be spawned.
use std::rc::Rc;

use tethered::Scope;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    Scope::run(async |scope| {
        scope.spawn(async {
            let shared = Rc::new(1);
            tokio::task::yield_now().await;
            println!("{shared}");
        });
    })
    .await
    .unwrap();
}
