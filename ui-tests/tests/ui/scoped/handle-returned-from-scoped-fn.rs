// A handle is branded with its scope's lifetime: a `#[scoped]` fn cannot
// return one, since its scope ends when the fn returns.
use tethered::{TaskHandle, scoped};

#[scoped]
async fn leak() -> TaskHandle<'static, u32> {
    spawn!(async { 1 })
}

fn main() {}
