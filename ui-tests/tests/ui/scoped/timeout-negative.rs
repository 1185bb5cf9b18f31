// A negative timeout means nothing.
use tethered::scoped;

#[scoped(timeout = "-1s")]
async fn run() {}

fn main() {}
