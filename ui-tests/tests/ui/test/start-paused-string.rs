// `start_paused` takes a boolean, not a string.
#[tethered::test(start_paused = "yes")]
async fn paused() {}

fn main() {}
