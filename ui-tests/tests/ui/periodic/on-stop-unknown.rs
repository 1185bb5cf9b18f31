use tethered::periodic;

#[periodic(every = "5s", on_stop = ignore)]
async fn heartbeat() {}

fn main() {}
