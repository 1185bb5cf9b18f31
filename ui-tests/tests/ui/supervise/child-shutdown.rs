use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        child "a" (shutdown forever) => worker(),
        child "b" (shutdown) => worker(),
        child "c" (shutdown "1s", shutdown brutal) => worker(),
        child "d" (shutdown "2 fortnights") => worker(),
        child "e" (shutdown "0s") => worker(),
    };
}

fn main() {}
