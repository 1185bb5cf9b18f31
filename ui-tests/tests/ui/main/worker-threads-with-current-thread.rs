// A current-thread runtime has no worker threads to count.
#[tethered::main(worker_threads = 2, flavor = "current_thread")]
async fn main() {}
