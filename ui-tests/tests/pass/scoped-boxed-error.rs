// `Box<dyn Error + Send + Sync>` takes a `ScopeError` (which is a std
// `Error`) through `From`, so it works as a `#[scoped]` fn's error type.
use std::error::Error;

use tethered::{ScopeError, scoped};

type BoxError = Box<dyn Error + Send + Sync>;

#[scoped(on_exit = cancel)]
async fn sum(first: &'static str, rest: &'static str) -> Result<u64, BoxError> {
    let mut total: u64 = first.trim().parse()?;
    let mut handles = Vec::new();
    for part in rest.split(',') {
        handles.push(spawn!(part, async move { part.trim().parse::<u64>() }));
    }
    for handle in handles {
        total += handle.join().await.completed().unwrap_or(0);
    }
    Ok(total)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(sum("1", "2, 3").await.unwrap(), 6);
    let own = sum("x", "2").await.unwrap_err();
    assert!(own.is::<std::num::ParseIntError>(), "{own}");
    let child = sum("1", "2, y").await.unwrap_err();
    assert!(child.is::<ScopeError>(), "{child}");
}
