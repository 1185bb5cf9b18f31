// A scope spawns tasks at run time: it cannot be `const`.
use tethered::scoped;

#[scoped]
const async fn run() {}

fn main() {}
