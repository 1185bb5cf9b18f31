use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        child "plain" worker(),
        child "with-options" (transient) worker(),
        child "unparenthesised" transient => worker(),
    };
}

fn main() {}
