//! [`Outcome`]: exactly how a task ended.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use crate::error::PanicPayload;
use crate::reason::CancelReason;

/// How a task ended: exactly one of completed, failed, panicked, cancelled.
///
/// `E` is the task's error type for tasks spawned with
/// [`spawn_fallible`](crate::Scope::spawn_fallible); for other tasks it is
/// [`Infallible`]. The error is shared (`Arc<E>`) because the scope reports
/// the same failure in its [`ScopeError`](crate::ScopeError): a failure is a
/// failure of the whole group, whoever else looks at it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::{CancelKind, Outcome, Scope};
///
/// Scope::run(async |scope| {
///     let slow = scope.spawn(std::future::pending::<()>());
///     match slow.cancel_and_wait("not needed").await {
///         Outcome::Cancelled(reason) => {
///             assert_eq!(reason.kind(), CancelKind::Explicit);
///             assert_eq!(reason.message(), Some("not needed"));
///         }
///         other => panic!("unexpected {other:?}"),
///     }
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use = "an outcome may hold a failure or a panic; look at it"]
pub enum Outcome<T, E = Infallible> {
    /// The task ran to completion with this value.
    Completed(T),
    /// The task returned `Err` (only tasks spawned as fallible).
    Failed(Arc<E>),
    /// The task panicked.
    Panicked(PanicPayload),
    /// The task was cancelled before it completed.
    Cancelled(CancelReason),
}

impl<T, E> Outcome<T, E> {
    /// Whether the task completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed(_))
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Outcome::Cancelled(_))
    }

    /// Whether the task failed or panicked.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::Panicked(_))
    }

    /// The value, if the task completed.
    pub fn completed(self) -> Option<T> {
        match self {
            Outcome::Completed(value) => Some(value),
            _ => None,
        }
    }

    /// The cancel reason, if the task was cancelled.
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        match self {
            Outcome::Cancelled(reason) => Some(reason),
            _ => None,
        }
    }

    /// The value of a completed task; re-raises a panic, and panics with the
    /// error or the reason otherwise.
    #[track_caller]
    pub fn unwrap(self) -> T
    where
        E: fmt::Debug,
    {
        match self {
            Outcome::Completed(value) => value,
            Outcome::Failed(error) => panic!("called `Outcome::unwrap` on a failure: {error:?}"),
            Outcome::Panicked(payload) => payload.resume_unwind(),
            Outcome::Cancelled(reason) => {
                panic!("called `Outcome::unwrap` on a cancelled task: {reason}")
            }
        }
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for Outcome<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed(value) => f.debug_tuple("Completed").field(value).finish(),
            Outcome::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
            Outcome::Panicked(payload) => f.debug_tuple("Panicked").field(payload).finish(),
            Outcome::Cancelled(reason) => f.debug_tuple("Cancelled").field(reason).finish(),
        }
    }
}
