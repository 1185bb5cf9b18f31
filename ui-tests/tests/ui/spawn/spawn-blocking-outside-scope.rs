// Outside a `#[scoped]` fn there is no scope for `spawn_blocking!` to wait.
use tethered::spawn_blocking;

fn hash() -> u64 {
    spawn_blocking!(|| (1..=1000u64).sum::<u64>());
    0
}

fn main() {
    hash();
}
