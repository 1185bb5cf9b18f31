// `main` is called by the runtime, which has no arguments to give it.
#[tethered::main]
async fn main(args: Vec<String>) {
    drop(args);
}
