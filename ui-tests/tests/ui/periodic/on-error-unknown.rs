use tethered::periodic;

#[periodic(every = "5s", on_error = retry)]
async fn tick() {}

fn main() {}
