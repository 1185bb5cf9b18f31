use tethered::periodic;

#[periodic(overlap = skip)]
async fn tick() {}

fn main() {}
