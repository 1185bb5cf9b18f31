// A `crate` path that leads nowhere is reported where it is written.
#[tethered::scoped(crate = tethred)]
async fn run() -> u32 {
    spawn!(async { 1 }).join().await.unwrap()
}

fn main() {}
