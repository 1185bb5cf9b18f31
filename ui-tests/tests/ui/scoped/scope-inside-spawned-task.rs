// A child task is `'static`: `scope!()` borrows the scope and cannot move
// into it (take a `scope!().handle()` outside the task instead).
use tethered::scoped;

#[scoped]
async fn run() {
    spawn!(async move {
        scope!().cancel("from a child");
    });
}

fn main() {}
