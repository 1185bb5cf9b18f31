// `spawn!` starts a tokio task that may run on any worker thread: a future
// holding an `Rc` across an `.await` is not `Send`, and the compiler says
// so, pointing at the `.await`.
use std::rc::Rc;

#[tethered::scoped]
async fn count() {
    spawn!("counter", async {
        let shared = Rc::new(1);
        tokio::task::yield_now().await;
        println!("{shared}");
    });
}

fn main() {
    let _ = count();
}
