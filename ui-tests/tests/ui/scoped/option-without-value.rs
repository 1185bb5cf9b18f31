// Every option takes a value.
use tethered::scoped;

#[scoped(timeout)]
async fn run() {}

fn main() {}
