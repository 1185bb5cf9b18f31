// `crate` takes the path the crate is known by, not any expression.
#[tethered::scoped(crate = 5)]
async fn run() {}

#[tethered::periodic(every = "1s", crate = "not a path")]
async fn tick() {}

fn main() {}
