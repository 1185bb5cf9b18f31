// A misspelt option is reported with the closest accepted one.
use tethered::scoped;

#[scoped(timout = "5s")]
async fn run() {}

fn main() {}
