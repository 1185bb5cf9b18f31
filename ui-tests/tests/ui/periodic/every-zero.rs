use tethered::periodic;

#[periodic(every = "0s")]
async fn tick() {}

fn main() {}
