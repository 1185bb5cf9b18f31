use std::time::Duration;

use tethered::supervise;

async fn worker() {}

struct Config {
    grace: Duration,
    grace_secs: u64,
}

async fn run(config: Config) {
    // Empty, or not an expression.
    let _ = supervise! {
        shutdown: grace () then cancel (,),
        child "worker" => worker(),
    };
    // An expression of the wrong type: a `Duration` is needed.
    let _ = supervise! {
        shutdown: grace (config.grace_secs) then cancel (config.grace),
        child "worker" => worker(),
    };
}

fn main() {}
