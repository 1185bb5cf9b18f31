// A timeout is parsed at compile time.
use tethered::scoped;

#[scoped(timeout = "5 parsecs")]
async fn run() {}

fn main() {}
