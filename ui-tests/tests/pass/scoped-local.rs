// Local children in `#[scoped]` fns: borrowing `&self`, a slice and an
// owned argument; `Send` unless `send = false`; mixed with spawned ones.
use std::cell::Cell;

struct Totals {
    base: u64,
}

impl Totals {
    #[tethered::scoped]
    async fn sum(&self, parts: &[u64], extra: Vec<u64>) -> u64 {
        let mut handles = Vec::new();
        for part in parts.iter().chain(&extra) {
            handles.push(tethered::spawn_local!(async move { self.base + part }));
        }
        let spawned = tethered::spawn!(async { 100u64 });
        let mut total = spawned.join().await.unwrap();
        for handle in handles {
            total += handle.join().await.unwrap();
        }
        total
    }
}

#[tethered::scoped(send = false)]
async fn count(hits: &Cell<u32>) {
    for _ in 0..3 {
        tethered::spawn_local!(async { hits.set(hits.get() + 1) });
    }
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let totals = Totals { base: 1 };
    let parts = [10, 20];
    let sum = totals.sum(&parts, vec![30]);
    assert_send(&sum);
    assert_eq!(runtime.block_on(sum), 100 + 11 + 21 + 31);
    let hits = Cell::new(0);
    runtime.block_on(count(&hits));
    assert_eq!(hits.get(), 3);
}
