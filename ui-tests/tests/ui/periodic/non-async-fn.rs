use tethered::periodic;

#[periodic(every = "5s")]
fn tick() {}

fn main() {}
