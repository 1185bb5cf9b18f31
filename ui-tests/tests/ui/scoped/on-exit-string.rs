// `on_exit` takes a bare word, not a string.
use tethered::scoped;

#[scoped(on_exit = "cancel")]
async fn run() {}

fn main() {}
