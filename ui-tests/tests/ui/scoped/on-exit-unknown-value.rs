// `on_exit` is `join` or `cancel`.
use tethered::scoped;

#[scoped(on_exit = abort)]
async fn run() {}

fn main() {}
