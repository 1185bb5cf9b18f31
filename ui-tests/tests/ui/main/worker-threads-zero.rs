// A multi-threaded runtime needs at least one worker.
#[tethered::main(worker_threads = 0)]
async fn main() {}
