use tethered::periodic;

#[periodic(every = "5s", overlap = concurrent(0))]
async fn tick() {}

fn main() {}
