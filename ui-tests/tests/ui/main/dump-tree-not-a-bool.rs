// `dump_tree` is `true` or `false`.
#[tethered::main(dump_tree = "yes")]
async fn main() {}
