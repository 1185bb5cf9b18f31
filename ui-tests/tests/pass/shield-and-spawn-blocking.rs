// `shield!` and `spawn_blocking!`, plain and named, bound and not.
use tethered::scoped;

#[scoped]
async fn run() -> u64 {
    shield!(async {});
    shield!("flush", async {});
    spawn_blocking!(|| ());
    spawn_blocking!("noop", || ());
    let saved = shield!("save", async { 2u64 });
    let summed = spawn_blocking!("sum", || (1..=10u64).sum::<u64>());
    saved.join().await.unwrap() + summed.join().await.unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(run().await, 57);
}
