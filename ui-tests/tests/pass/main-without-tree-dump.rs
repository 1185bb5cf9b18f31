// A program that uses SIGUSR1 itself turns the tree dump off.
#[tethered::main(dump_tree = false, grace = "1s")]
async fn main() {}
