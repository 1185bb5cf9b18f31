// An option given twice is an error, not "the last one wins".
use tethered::scoped;

#[scoped(timeout = "5s", timeout = "10s")]
async fn run() {}

fn main() {}
