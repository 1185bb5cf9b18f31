// tokio's timer cannot tick more often than once a millisecond.
use tethered::periodic;

#[periodic(every = "500us")]
async fn tick() {}

fn main() {}
