use std::sync::Arc;

use tethered::supervise;

async fn worker(_db: Arc<String>) {}

async fn run(db: Arc<String>) {
    let _ = supervise! {
        // Made again on every restart: it must clone `db`, not move it.
        child "worker" => async move { worker(db).await },
    };
}

fn main() {}
