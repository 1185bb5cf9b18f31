use tethered::periodic;

#[periodic(every = "5 parsecs")]
async fn tick() {}

fn main() {}
