use tethered::periodic;

#[periodic(every = "5s", jitter = "5s")]
async fn tick() {}

fn main() {}
