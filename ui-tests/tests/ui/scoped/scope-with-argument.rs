// `scope!()` names the enclosing scope and takes no arguments.
use tethered::scoped;

#[scoped]
async fn run() {
    let outer = 1;
    scope!(outer).cancel("done");
}

fn main() {}
