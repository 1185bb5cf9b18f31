// A timeout is a string with a unit: `5` alone could be seconds or millis.
use tethered::scoped;

#[scoped(timeout = 5)]
async fn run() {}

fn main() {}
