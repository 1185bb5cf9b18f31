use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        child "reversed" (backoff "5s".."1s") => worker(),
        child "inclusive" (backoff "1s"..="5s") => worker(),
        child "none-with-factor" (backoff none, factor 2) => worker(),
        child "shrinking" (factor 0.5) => worker(),
        child "too-random" (jitter 1.5) => worker(),
        child "temporary" (temporary, backoff "1s".."5s") => worker(),
        child "typo" (bakoff "1s".."5s") => worker(),
    };
}

fn main() {}
