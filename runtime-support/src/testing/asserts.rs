//! Assertions about how a task ended: [`assert_completed!`],
//! [`assert_cancelled!`], [`assert_failed!`] and [`assert_panicked!`]. Each
//! returns what there is to look at next (the value, the reason, the error,
//! the payload), and, when the task ended otherwise, panics at the test's
//! line with what did happen.
//!
//! [`assert_completed!`]: crate::testing::assert_completed
//! [`assert_cancelled!`]: crate::testing::assert_cancelled
//! [`assert_failed!`]: crate::testing::assert_failed
//! [`assert_panicked!`]: crate::testing::assert_panicked

use std::fmt;
use std::sync::Arc;

use crate::error::PanicPayload;
use crate::outcome::Outcome;
use crate::reason::{CancelKind, CancelReason};

/// How an outcome ended, for a failed assertion's message.
fn describe<T, E: fmt::Debug>(outcome: &Outcome<T, E>) -> String {
    match outcome {
        Outcome::Completed(_) => "it completed".to_owned(),
        Outcome::Failed(error) => format!("it failed: {error:?}"),
        Outcome::Panicked(payload) => format!("it panicked: {payload}"),
        Outcome::Cancelled(reason) => format!("it was cancelled: {reason}"),
    }
}

#[doc(hidden)]
#[track_caller]
pub fn expect_completed<T, E: fmt::Debug>(outcome: Outcome<T, E>) -> T {
    match outcome {
        Outcome::Completed(value) => value,
        other => panic!("expected the task to complete, but {}", describe(&other)),
    }
}

#[doc(hidden)]
#[track_caller]
pub fn expect_failed<T, E: fmt::Debug>(outcome: Outcome<T, E>) -> Arc<E> {
    match outcome {
        Outcome::Failed(error) => error,
        other => panic!("expected the task to fail, but {}", describe(&other)),
    }
}

#[doc(hidden)]
#[track_caller]
pub fn expect_panicked<T, E: fmt::Debug>(
    outcome: Outcome<T, E>,
    message: Option<&str>,
) -> PanicPayload {
    match outcome {
        Outcome::Panicked(payload) => {
            if let Some(message) = message {
                assert!(
                    payload.message().contains(message),
                    "expected the task to panic with `{message}`, but it panicked: {payload}"
                );
            }
            payload
        }
        other => panic!("expected the task to panic, but {}", describe(&other)),
    }
}

/// What [`assert_cancelled!`](crate::testing::assert_cancelled) checks a
/// reason against: a [`CancelKind`] (the reason's own kind) or a message
/// (the reason's, or one of its causes').
pub trait ReasonMatcher: fmt::Debug {
    /// Whether `reason` is what was expected.
    fn matches(&self, reason: &CancelReason) -> bool;
}

impl ReasonMatcher for CancelKind {
    fn matches(&self, reason: &CancelReason) -> bool {
        reason.kind() == *self
    }
}

impl ReasonMatcher for &str {
    fn matches(&self, reason: &CancelReason) -> bool {
        reason.chain().any(|link| link.message() == Some(*self))
    }
}

/// Anything: the reason is only returned.
#[derive(Debug)]
#[doc(hidden)]
pub struct AnyReason;

impl ReasonMatcher for AnyReason {
    fn matches(&self, _: &CancelReason) -> bool {
        true
    }
}

#[doc(hidden)]
#[track_caller]
pub fn expect_cancelled<T, E: fmt::Debug>(
    outcome: Outcome<T, E>,
    expected: impl ReasonMatcher,
) -> CancelReason {
    match outcome {
        Outcome::Cancelled(reason) => {
            assert!(
                expected.matches(&reason),
                "expected the task to be cancelled with {expected:?}, but it was cancelled: {reason}"
            );
            reason
        }
        other => panic!(
            "expected the task to be cancelled, but {}",
            describe(&other)
        ),
    }
}

/// Asserts that a task completed (its [`Outcome`] is `Completed`), and
/// returns its value; otherwise panics, at the caller, with how it ended.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
/// use tethered::testing::assert_completed;
///
/// Scope::run(async |scope| {
///     let task = scope.spawn(async { "done" });
///     assert_eq!(assert_completed!(task.join().await), "done");
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __tethered_assert_completed {
    ($outcome:expr $(,)?) => {
        $crate::testing::expect_completed($outcome)
    };
}

/// Asserts that a task was cancelled, and returns the [`CancelReason`];
/// with a second argument, that the reason is of that [`CancelKind`], or
/// that it (or one of its causes) has that message.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use tethered::testing::assert_cancelled;
/// use tethered::{CancelKind, Scope};
///
/// Scope::run(async |scope| {
///     let slow = scope.spawn(std::future::pending::<()>());
///     let outcome = slow.cancel_and_wait("deploy").await;
///     let reason = assert_cancelled!(outcome, "deploy");
///     assert_eq!(reason.kind(), CancelKind::Explicit);
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __tethered_assert_cancelled {
    ($outcome:expr $(,)?) => {
        $crate::testing::expect_cancelled($outcome, $crate::testing::__AnyReason)
    };
    ($outcome:expr, $expected:expr $(,)?) => {
        $crate::testing::expect_cancelled($outcome, $expected)
    };
}

/// Asserts that a fallible task failed (returned `Err`), and returns the
/// error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
/// use tethered::testing::assert_failed;
///
/// let _ = Scope::run(async |scope| {
///     let task = scope.spawn_fallible(async { Err::<(), _>("refused") });
///     assert_eq!(*assert_failed!(task.join().await), "refused");
/// })
/// .await;
/// # }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __tethered_assert_failed {
    ($outcome:expr $(,)?) => {
        $crate::testing::expect_failed($outcome)
    };
}

/// Asserts that a task panicked, and returns the payload; with a second
/// argument, that the panic's message contains it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
/// use tethered::testing::assert_panicked;
///
/// let _ = Scope::run(async |scope| {
///     let task = scope.spawn(async { panic!("disk on fire") });
///     assert_panicked!(task.join().await, "on fire");
/// })
/// .await;
/// # }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __tethered_assert_panicked {
    ($outcome:expr $(,)?) => {
        $crate::testing::expect_panicked($outcome, ::core::option::Option::None)
    };
    ($outcome:expr, $message:expr $(,)?) => {
        $crate::testing::expect_panicked($outcome, ::core::option::Option::Some($message))
    };
}
