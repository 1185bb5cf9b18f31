use tethered::periodic;

#[periodic(every = "5s", overlpa = skip)]
async fn tick() {}

fn main() {}
