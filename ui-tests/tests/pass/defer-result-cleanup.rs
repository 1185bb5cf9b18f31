// `defer!` takes a cleanup returning `()` or a `Result` whose `Err` fails
// the scope.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tethered::scoped;

#[scoped]
async fn run(cleaned: Arc<AtomicU32>) {
    let counter = Arc::clone(&cleaned);
    defer!(async move {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<(), std::io::Error>(())
    });
    let counter = Arc::clone(&cleaned);
    defer!(async move {
        counter.fetch_add(10, Ordering::SeqCst);
    });
    spawn!(async {});
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cleaned = Arc::new(AtomicU32::new(0));
    run(Arc::clone(&cleaned)).await;
    assert_eq!(cleaned.load(Ordering::SeqCst), 11);
}
