use std::sync::Arc;

use tethered::supervise;

async fn worker(_db: Arc<String>) {}

async fn run(db: Arc<String>) {
    let _ = supervise! {
        child "closure" => || worker(db.clone()),
        child "async-closure" => async move || worker(db.clone()).await,
    };
}

fn main() {}
