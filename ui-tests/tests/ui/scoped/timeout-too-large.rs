// More years than a `Duration` holds: too large, not "not a duration".
use tethered::scoped;

#[scoped(timeout = "600000000000y")]
async fn run() {}

fn main() {}
