// The runtime flavors are tokio's: "current_thread" and "multi_thread".
#[tethered::main(flavor = "single")]
async fn main() {}
