// An option that is not close to any accepted one lists them all.
use tethered::scoped;

#[scoped(colour = "blue")]
async fn run() {}

fn main() {}
