// The body of `main` is a scope, which is awaited.
#[tethered::main]
fn main() {}
