// A child task is `'static`: it cannot borrow the scope to start siblings
// with `spawn!` (use `scope!().handle()` and `ScopeHandle::try_spawn`).
use tethered::scoped;

#[scoped]
async fn run() {
    spawn!(async move {
        spawn!(async { 1 });
    });
}

fn main() {}
