//! Structured concurrency for tokio.
//!
//! Every task is tethered to a [`Scope`]; no task outlives the scope that
//! spawned it; every cancellation says who asked for it and why.
//!
//! * [`Scope::run`] runs a body that spawns children and returns only when
//!   all of them have ended. The first child that fails cancels its siblings,
//!   and the scope returns every failure in a [`ScopeError`].
//! * A [`TaskHandle`] is branded with its scope's lifetime, so it cannot
//!   escape; [`TaskHandle::join`] and [`TaskHandle::cancel_and_wait`] return
//!   an [`Outcome`] that says exactly how the task ended.
//! * Cancellation comes in two strengths: *stop*, a request observed with
//!   [`stop_requested`] / [`is_stopping`], and *cancel*, which drops the
//!   task's future at its next `.await`. Each carries a [`CancelReason`]: kind,
//!   message, the caller's source location, the task that asked, and the
//!   reason that led to it.
//! * [`Scope::shield`] runs work that cancellation does not reach but that
//!   the scope still waits for; [`Scope::defer`] registers async cleanup
//!   that runs however the scope ends.
//! * [`tree()`] shows every live scope and task.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tethered::{CancelKind, Outcome, Scope};
//!
//! let result = Scope::run(async |scope| {
//!     let fast = scope.spawn_named("fast", async { "fast answer" });
//!     let slow = scope.spawn_named("slow", std::future::pending::<&str>());
//!     let answer = fast.join().await.unwrap();
//!     match slow.cancel_and_wait("have an answer").await {
//!         Outcome::Cancelled(reason) => assert_eq!(reason.kind(), CancelKind::Explicit),
//!         other => panic!("unexpected {other:?}"),
//!     }
//!     answer
//! })
//! .await;
//! assert_eq!(result.unwrap(), "fast answer");
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cleanup;
mod current;
mod error;
mod node;
mod outcome;
mod reason;
mod scope;
mod shield;
mod task;
mod tree;

#[doc(inline)]
pub use cleanup::CleanupOutput;
#[doc(inline)]
pub use current::{Current, StopRequested, current, is_stopping, stop_requested};
#[doc(inline)]
pub use error::{
    FailureKind, PanicPayload, ScopeError, ScopeErrorKind, SpawnError, TaskError, TaskFailure,
};
#[doc(inline)]
pub use outcome::Outcome;
#[doc(inline)]
pub use reason::{CancelKind, CancelReason, IntoCancelReason};
#[doc(inline)]
pub use scope::{DEFAULT_CLEANUP_TIMEOUT, OnExit, Scope, ScopeBuilder, ScopeHandle};
#[doc(inline)]
pub use task::TaskHandle;
#[doc(inline)]
pub use tree::{EntryKind, EntryState, TaskTree, TreeEntry, tree};

// Not public API. Used by the code the `tethered-macros` expand into.
#[doc(hidden)]
pub mod __private {}
