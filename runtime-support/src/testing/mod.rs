//! A test kit for code that uses tethered (the `test-util` feature):
//! assertions about how tasks ended that read like the book, a snapshot of
//! the task tree that can be compared with a string, and a runner that
//! takes a `#[tethered::main]` body through signals, its grace and its
//! cancel timeout on tokio's paused clock, in the test's own process.
//!
//! ```toml
//! [dev-dependencies]
//! tethered = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use tethered::testing::{assert_cancelled, assert_completed};
//! use tethered::{CancelKind, Scope};
//!
//! Scope::run(async |scope| {
//!     let answer = scope.spawn(async { 42 });
//!     let stuck = scope.spawn(std::future::pending::<()>());
//!     assert_eq!(assert_completed!(answer.join().await), 42);
//!     let reason = assert_cancelled!(stuck.cancel_and_wait("enough").await, CancelKind::Explicit);
//!     assert_eq!(reason.message(), Some("enough"));
//! })
//! .await
//! .unwrap();
//! # }
//! ```

mod asserts;
mod main_test;
mod snapshot;

pub use asserts::ReasonMatcher;
#[doc(hidden)]
pub use asserts::{
    AnyReason as __AnyReason, expect_cancelled, expect_completed, expect_failed, expect_panicked,
};
pub use main_test::{MainRun, MainTest};
pub use snapshot::{snapshot, snapshot_of};

#[doc(inline)]
pub use crate::{
    __tethered_assert_cancelled as assert_cancelled,
    __tethered_assert_completed as assert_completed, __tethered_assert_failed as assert_failed,
    __tethered_assert_panicked as assert_panicked,
};
