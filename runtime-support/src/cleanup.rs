//! Deferred cleanup: [`Scope::defer`] and [`CleanupOutput`].
//!
//! Cleanups run when their scope ends, for every way it can end (success,
//! failure, panic, timeout, cancellation, its future being dropped), after
//! every child has been joined, last registered first. They run in a task of
//! their own that hard cancellation does not reach, each bounded by the
//! scope's cleanup timeout. A cleanup that fails, panics or times out is
//! reported in the scope's [`ScopeError`](crate::ScopeError).

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::sync::Arc as StdArc;
use std::task::Poll;
use std::time::Duration;

use crate::deadline;
use crate::error::{FailureKind, TaskError, TaskFailure};
use crate::never::Never;
use crate::node::sync::Arc;
use crate::node::{FinishOnDrop, Guarded, Node, NodeKind, Settled, children_done};
use crate::scope::Scope;

/// What a cleanup future may return: `()`, or `Result<(), E>` whose `Err` is
/// reported as a failure of the scope; a schedule's
/// `Result<PeriodicStats, PeriodicError>` too.
#[diagnostic::on_unimplemented(
    message = "a cleanup returns `()` or `Result<(), E>`, not `{Self}`",
    label = "this cleanup returns `{Self}`",
    note = "`Err` (with `E: Display + Debug + Send + Sync + 'static`) is reported as a failure of the scope; a value has nowhere to go once the scope has ended"
)]
pub trait CleanupOutput: Send + 'static {
    /// `Err` when the cleanup failed.
    fn into_cleanup_result(self) -> Result<(), TaskError>;
}

impl CleanupOutput for () {
    fn into_cleanup_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A cleanup that never returns (`async { loop { … } }`): it ends when its
/// cleanup timeout is up.
#[diagnostic::do_not_recommend]
impl CleanupOutput for Never {
    fn into_cleanup_result(self) -> Result<(), TaskError> {
        self
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
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Nothing can run them: each is a failure of the scope, never a
        // cleanup silently skipped.
        for cleanup in cleanups.into_iter().rev() {
            let error = TaskError::new(StdArc::new(
                "not run: the scope was polled outside a tokio runtime, where cleanups run; \
                 poll it inside one (`#[tokio::main]`, `Runtime::block_on`)",
            ));
            report(scope, cleanup.location, FailureKind::CleanupError(error));
        }
        return;
    };
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
            let ran = bounded(limit, Guarded::new(phase.clone(), cleanup.future));
            let failure = match ran.await {
                Some(Settled::Completed(Ok(()))) => None,
                Some(Settled::Completed(Err(error))) => Some(FailureKind::CleanupError(error)),
                Some(Settled::Panicked(payload)) => Some(FailureKind::CleanupPanic(payload)),
                // Cleanup nodes are never hard-cancelled; nothing to report.
                Some(Settled::Cancelled) => None,
                None => Some(FailureKind::CleanupTimedOut(limit)),
            };
            if let Some(kind) = failure {
                report(&scope, cleanup.location, kind);
            }
        }
        // A cleanup that timed out, or dropped a scope of its own, may have
        // left nested scopes finishing their cancellation: they are still
        // part of this scope.
        children_done(&phase).await;
        drop(phase_done);
    };
    drop(runtime.spawn(runner));
}

/// Records a cleanup's failure on its scope (which it fails, not cancels).
fn report(scope: &Node, location: &'static Location<'static>, kind: FailureKind) {
    let failure = TaskFailure::new(scope.name(), location, kind);
    tracing::warn!(
        target: "tethered::cleanup",
        scope = scope.name(),
        failure = %failure,
        "cleanup failed",
    );
    scope.record_failure(failure, false);
}

/// Runs `cleanup` for at most `limit`: `None` when its time was up first.
///
/// Unlike `tokio::time::timeout`, a cleanup is not polled again once its
/// time is up, even when it was woken in the same instant: a zero limit
/// gives it exactly one poll (it runs up to its first `.await` that has to
/// wait, and is dropped there), and a tie with the deadline is always the
/// deadline's.
async fn bounded<F: Future>(limit: Duration, cleanup: F) -> Option<F::Output> {
    let deadline = deadline::after(tokio::time::Instant::now(), limit);
    let mut timer = pin!(tokio::time::sleep_until(deadline));
    let mut cleanup = pin!(cleanup);
    let mut polled = false;
    poll_fn(|cx| {
        if polled && tokio::time::Instant::now() >= deadline {
            return Poll::Ready(None);
        }
        polled = true;
        if let Poll::Ready(output) = cleanup.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if limit.is_zero() || timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
