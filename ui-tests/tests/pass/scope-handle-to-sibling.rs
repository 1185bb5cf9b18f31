// `scope!().handle()` is `'static`: a child can take it and start siblings
// through `ScopeHandle::try_spawn`.
use tethered::scoped;

#[scoped]
async fn pipeline() -> u32 {
    let handle = scope!().handle();
    let producer = spawn!("producer", async move {
        let sibling = handle.try_spawn(async { 20 }).expect("scope is open");
        sibling.join().await.unwrap() + 1
    });
    producer.join().await.unwrap() * 2
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(pipeline().await, 42);
}
