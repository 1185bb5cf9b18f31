// A zero timeout would cancel the scope before it starts.
use tethered::scoped;

#[scoped(timeout = "0s")]
async fn run() {}

fn main() {}
