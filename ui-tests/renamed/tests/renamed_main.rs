//! `#[tt::main(crate = tt)]`: a program's `main`, through the renamed
//! crate. (A test without the harness, so that this `main` is the test.)

use std::sync::atomic::{AtomicU32, Ordering};

static RAN: AtomicU32 = AtomicU32::new(0);

#[tt::main(crate = tt, flavor = "current_thread", grace = "1s")]
async fn main() {
    let child = spawn!("child", async { RAN.fetch_add(1, Ordering::SeqCst) });
    defer!(async { assert_eq!(RAN.load(Ordering::SeqCst), 1) });
    assert_eq!(child.join().await.unwrap(), 0);
}
