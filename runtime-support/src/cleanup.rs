//! Deferred cleanup: [`Scope::defer`] and [`CleanupOutput`].
//!
//! Cleanups run when their scope ends, for every way it can end (success,
//! failure, panic, timeout, cancellation, its future being dropped), after
//! every child has been joined, last registered first. They run in a task of
//! their own that hard cancellation does not reach, each bounded by the
//! scope's cleanup timeout. A cleanup that fails, panics or times out is
//! reported in the scope's [`ScopeError`](crate::ScopeError).

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::time::Duration;

use crate::error::{FailureKind, TaskError, TaskFailure};
use crate::node::sync::Arc;
use crate::node::{FinishOnDrop, Guarded, Node, NodeKind, Settled, children_done};
use crate::scope::Scope;

/// What a cleanup future (or a supervised child's) may return: `()`, or
/// `Result<(), E>` whose `Err` is reported as a failure; a schedule's
/// `Result<PeriodicStats, PeriodicError>` too.
pub trait CleanupOutput: Send + 'static {
    /// `Err` when the cleanup failed.
    fn into_cleanup_result(self) -> Result<(), TaskError>;
}

impl CleanupOutput for () {
    fn into_cleanup_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl<E> CleanupOutput for Result<(), E>
where
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    fn into_cleanup_result(self) -> Result<(), TaskError> {
        self.map_err(|error| TaskError::new(StdArc::new(error)))
    }
}

type CleanupFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;

/// A registered cleanup and where it was registered.
pub(crate) struct Cleanup {
    future: CleanupFuture,
    location: &'static Location<'static>,
}

impl Scope {
    /// Registers `cleanup` to run when the scope ends, however it ends.
    ///
    /// Cleanups run after every child has ended, last registered first, each
    /// bounded by the scope's cleanup timeout, and hard cancellation does not
    /// reach them. A cleanup returning `Err`, panicking or timing out makes
    /// the scope fail with that failure (its value, if any, is not lost: it is
    /// reported instead of silently dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use tethered::Scope;
    ///
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let result = Scope::run(async |scope| {
    ///     let first = log.clone();
    ///     scope.defer(async move { first.lock().unwrap().push("close file") });
    ///     let second = log.clone();
    ///     scope.defer(async move { second.lock().unwrap().push("flush buffer") });
    ///     scope.spawn_fallible(async { Err::<(), _>("write failed") });
    /// })
    /// .await;
    /// assert!(result.is_err());
    /// // Cleanups ran anyway, last registered first.
    /// assert_eq!(*log.lock().unwrap(), ["flush buffer", "close file"]);
    /// # }
    /// ```
    #[track_caller]
    pub fn defer<F>(&self, cleanup: F)
    where
        F: Future + Send + 'static,
        F::Output: CleanupOutput,
    {
        let future = Box::pin(async move { cleanup.await.into_cleanup_result() });
        self.push_cleanup(Cleanup {
            future,
            location: Location::caller(),
        });
    }
}

/// Starts running `cleanups` (last registered first) in a shielded task
/// registered under `scope`, so the scope's join waits for it. Failures are
/// recorded on `scope`.
pub(crate) fn run_cleanups(scope: &Arc<Node>, mut cleanups: Vec<Cleanup>, limit: Duration) {
    scope.set_in_cleanup();
    let phase = Node::new(
        NodeKind::Cleanup,
        None,
        scope.location(),
        tokio::time::Instant::now(),
        Some(scope.clone()),
    );
    let scope = scope.clone();
    let phase_done = FinishOnDrop(phase.clone());
    let runner = async move {
        while let Some(cleanup) = cleanups.pop() {
            let ran = tokio::time::timeout(limit, Guarded::new(phase.clone(), cleanup.future));
            let failure = match ran.await {
                Ok(Settled::Completed(Ok(()))) => None,
                Ok(Settled::Completed(Err(error))) => Some(FailureKind::CleanupError(error)),
                Ok(Settled::Panicked(payload)) => Some(FailureKind::CleanupPanic(payload)),
                // Cleanup nodes are never hard-cancelled; nothing to report.
                Ok(Settled::Cancelled) => None,
                Err(_elapsed) => Some(FailureKind::CleanupTimedOut(limit)),
            };
            if let Some(kind) = failure {
                let failure = TaskFailure::new(scope.name(), cleanup.location, kind);
                tracing::warn!(
                    target: "tethered::cleanup",
                    scope = scope.name(),
                    failure = %failure,
                    "cleanup failed",
                );
                scope.record_failure(failure, false);
            }
        }
        // A cleanup that timed out, or dropped a scope of its own, may have
        // left nested scopes finishing their cancellation: they are still
        // part of this scope.
        children_done(&phase).await;
        drop(phase_done);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(runner)),
        Err(_) => tracing::error!(
            target: "tethered::cleanup",
            "cleanups cannot run outside a tokio runtime",
        ),
    }
}
