// `?` in a `#[scoped]` body converts as it would in the fn: into the fn's
// error type, which also takes the scope's own failures.
use std::num::ParseIntError;

use tethered::{Outcome, ScopeError, scoped};

#[derive(Debug)]
enum AppError {
    Parse(ParseIntError),
    Scope(ScopeError),
}

impl From<ParseIntError> for AppError {
    fn from(error: ParseIntError) -> Self {
        AppError::Parse(error)
    }
}

impl From<ScopeError> for AppError {
    fn from(error: ScopeError) -> Self {
        AppError::Scope(error)
    }
}

#[scoped(timeout = "5s")]
async fn parse_both(a: &'static str, b: &'static str) -> Result<u32, AppError> {
    let first: u32 = a.parse()?;
    // A child returning `Err` fails the scope: the fn returns the scope's
    // error, whatever the body does with the outcome.
    let second = spawn!(async move { b.parse::<u32>() });
    match second.join().await {
        Outcome::Completed(second) => Ok(first + second),
        _ => Ok(first),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(parse_both("1", "2").await.unwrap(), 3);
    let own = parse_both("x", "2").await;
    assert!(matches!(own, Err(AppError::Parse(_))), "{own:?}");
    let child = parse_both("1", "y").await;
    assert!(matches!(child, Err(AppError::Scope(_))), "{child:?}");
}
