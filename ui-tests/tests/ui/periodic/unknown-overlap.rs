use tethered::periodic;

#[periodic(every = "5s", overlap = abort)]
async fn tick() {}

fn main() {}
