//! [`TaskHandle`]: a child task's handle, branded with its scope's lifetime.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc as StdArc;
use std::task::Poll;

use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;

use crate::error::{FailureKind, PanicPayload, TaskError, TaskFailure};
use crate::node::sync::Arc;
use crate::node::{Guarded, Node, NodeKind, Settled};
use crate::outcome::Outcome;
use crate::reason::{CancelKind, CancelReason, IntoCancelReason};

/// A handle to a child task of a scope.
///
/// The handle borrows the scope (`'scope`), so it cannot be returned from
/// the scope's body or stored anywhere that outlives it: every task is joined
/// by its scope whatever happens to its handle. Dropping the handle does not
/// cancel the task; the scope still waits for it. That is why the handle is
/// not `#[must_use]`: `scope.spawn(worker());` is a complete statement, and
/// the task is joined when the scope ends.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// let sum = Scope::run(async |scope| {
///     let a = scope.spawn(async { 20 });
///     let b = scope.spawn(async { 22 });
///     a.join().await.unwrap() + b.join().await.unwrap()
/// })
/// .await
/// .unwrap();
/// assert_eq!(sum, 42);
/// # }
/// ```
///
/// A handle cannot leave its scope:
///
/// ```compile_fail
/// # async fn f() {
/// use tethered::Scope;
///
/// let escaped = Scope::run(async |scope| scope.spawn(async { 1 })).await;
/// # }
/// ```
///
/// And a handle is joined at most once, because joining consumes it:
///
/// ```compile_fail
/// # async fn f() {
/// tethered::Scope::run(async |scope| {
///     let handle = scope.spawn(async { 1 });
///     let _ = handle.join().await;
///     let _ = handle.join().await;
/// })
/// .await;
/// # }
/// ```
pub struct TaskHandle<'scope, T, E = Infallible> {
    node: Arc<Node>,
    join: JoinHandle<Outcome<T, E>>,
    _scope: PhantomData<&'scope ()>,
}

impl<T, E> TaskHandle<'_, T, E> {
    /// Waits for the task to end and returns how it ended.
    ///
    /// If the future returned by `join` is dropped (the caller was
    /// cancelled), the task is unaffected, and its scope still joins it.
    ///
    /// Inside a scope, a child that fails cancels the scope, and with it the
    /// body awaiting `join`: the failure reaches the caller through the
    /// scope's [`ScopeError`](crate::ScopeError) rather than through
    /// [`Outcome::Failed`]. `Failed` is what a joiner sees where a failure
    /// does not cancel it (a shield, or code outside the group).
    pub async fn join(mut self) -> Outcome<T, E> {
        let joined = (&mut self.join).await;
        settle(&self.node, joined)
    }

    /// Cancels the task: its future is dropped at its next `.await` (its
    /// `Drop` impls run), then the cleanups of any scope inside it run.
    ///
    /// The reason is a [`CancelReason`], a [`CancelKind`](crate::CancelKind)
    /// or a message; the caller's location is recorded. If the task was
    /// already cancelled, the first reason is kept. Cancelling a finished
    /// task does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// Scope::run(async |scope| {
    ///     let ticker = scope.spawn(std::future::pending::<()>());
    ///     ticker.cancel("user closed the window");
    ///     let reason = ticker.join().await.cancel_reason().cloned().unwrap();
    ///     assert_eq!(reason.message(), Some("user closed the window"));
    ///     assert_eq!(reason.location().line(), line!() - 3);
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn cancel(&self, reason: impl IntoCancelReason) {
        self.node
            .cancel(reason.into_cancel_reason(Location::caller()), false);
    }

    /// Cancels the task and waits for it to end.
    ///
    /// Returns [`Outcome::Completed`] if the task completed before the
    /// cancellation reached it: a race the caller cannot control is not an
    /// error. If the caller is itself cancelled while waiting, the task still
    /// finishes cancelling, and the scope still joins it.
    #[track_caller]
    pub fn cancel_and_wait(
        self,
        reason: impl IntoCancelReason,
    ) -> impl Future<Output = Outcome<T, E>> {
        self.cancel(reason.into_cancel_reason(Location::caller()));
        self.join()
    }

    /// Asks the task to stop, gives it `grace` to end by itself, then cancels
    /// it with the same reason and waits for it: the phased shutdown of one
    /// task (a service's "finish what you are doing, then go").
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use tethered::{Outcome, Scope};
    ///
    /// Scope::run(async |scope| {
    ///     let polite = scope.spawn(async {
    ///         tethered::stop_requested().await;
    ///         "finished the batch"
    ///     });
    ///     let stubborn = scope.spawn(std::future::pending::<&str>());
    ///     let grace = Duration::from_secs(5);
    ///     assert!(matches!(polite.stop_and_wait("deploy", grace).await, Outcome::Completed(_)));
    ///     assert!(stubborn.stop_and_wait("deploy", grace).await.is_cancelled());
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn stop_and_wait(
        mut self,
        reason: impl IntoCancelReason,
        grace: std::time::Duration,
    ) -> impl Future<Output = Outcome<T, E>> {
        let reason = reason.into_cancel_reason(Location::caller());
        self.node.stop(reason.clone());
        async move {
            let joined = match tokio::time::timeout(grace, &mut self.join).await {
                Ok(joined) => joined,
                Err(_elapsed) => {
                    self.node.cancel(reason, false);
                    (&mut self.join).await
                }
            };
            settle(&self.node, joined)
        }
    }

    /// Asks the task to stop: a soft request it observes with
    /// [`stop_requested`](crate::stop_requested) or
    /// [`is_stopping`](crate::is_stopping).
    #[track_caller]
    pub fn stop(&self, reason: impl IntoCancelReason) {
        self.node
            .stop(reason.into_cancel_reason(Location::caller()));
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// The task's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.node.name()
    }

    /// Where the task was spawned.
    pub fn location(&self) -> &'static Location<'static> {
        self.node.location()
    }

    /// The reason the task was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.node.reason()
    }
}

impl<T, E> fmt::Debug for TaskHandle<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("name", &self.node.name())
            .field("location", &format_args!("{}", self.node.location()))
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Turns what the tokio task returned into the task's outcome.
fn settle<T, E>(node: &Node, joined: Result<Outcome<T, E>, JoinError>) -> Outcome<T, E> {
    match joined {
        Ok(outcome) => outcome,
        // Panics are caught inside the task; this one came from tethered's
        // own bookkeeping, and is still reported rather than lost.
        Err(error) if error.is_panic() => Outcome::Panicked(PanicPayload::new(error.into_panic())),
        // The runtime dropped the task: it is shutting down.
        Err(_) => Outcome::Cancelled(node.reason().unwrap_or_else(|| {
            CancelReason::at(CancelKind::Shutdown, node.location())
                .with_message("the tokio runtime shut down")
        })),
    }
}

/// Finishes its node when dropped, however the task ends, even when the
/// runtime drops the task before its first poll: otherwise the scope would
/// wait for it forever.
struct FinishOnDrop(Arc<Node>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Spawns `fut` as a child of `parent`; `split` tells success from failure.
///
/// Returns `None`, dropping `fut` unpolled, when `closed_check` is set and
/// the parent no longer accepts children.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_child<'s, F, T, E, S>(
    parent: &Arc<Node>,
    kind: NodeKind,
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    fut: F,
    split: S,
    closed_check: bool,
) -> Option<TaskHandle<'s, T, E>>
where
    F: Future + Send + 'static,
    F::Output: Send,
    S: FnOnce(F::Output) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    let node = if closed_check {
        Node::try_new(kind, name, location, parent)?
    } else {
        Node::new(kind, name, location, Some(parent.clone()))
    };
    let span = tracing::debug_span!(
        target: "tethered::task",
        "task",
        name = node.name(),
        location = %location,
        shielded = kind == NodeKind::Shield,
    );
    let guard = FinishOnDrop(node.clone());
    let join = tokio::spawn(run_task(guard, fut, split).instrument(span));
    Some(TaskHandle {
        node,
        join,
        _scope: PhantomData,
    })
}

async fn run_task<F, T, E, S>(guard: FinishOnDrop, fut: F, split: S) -> Outcome<T, E>
where
    F: Future,
    S: FnOnce(F::Output) -> Result<T, E>,
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    let node = &guard.0;
    let settled = Guarded::new(node.clone(), fut).await;
    node.set_settled();
    let outcome = match settled {
        Settled::Completed(output) => match split(output) {
            Ok(value) => Outcome::Completed(value),
            Err(error) => {
                let error = StdArc::new(error);
                report(node, FailureKind::Error(TaskError::new(error.clone())));
                Outcome::Failed(error)
            }
        },
        Settled::Panicked(payload) => {
            report(node, FailureKind::Panic(payload.clone()));
            Outcome::Panicked(payload)
        }
        Settled::Cancelled => Outcome::Cancelled(
            node.reason()
                .unwrap_or_else(|| CancelReason::at(CancelKind::Explicit, node.location())),
        ),
    };
    // Scopes nested in this task that were dropped mid-flight are still
    // finishing their cancellation: the task ends only after them.
    poll_fn(|cx| {
        if node.poll_children_done(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outcome
}

/// Records a task's failure on its scope (failing and cancelling the scope).
fn report(node: &Arc<Node>, kind: FailureKind) {
    let failure = TaskFailure::new(node.name(), node.location(), kind);
    tracing::warn!(
        target: "tethered::task",
        task = node.name(),
        location = %node.location(),
        failure = %failure.summary(),
        "task failed",
    );
    match node.parent().and_then(Node::enclosing_scope) {
        Some(scope) => scope.record_failure(failure, true),
        None => tracing::error!(
            target: "tethered::task",
            failure = %failure,
            "task failed with no scope to report to",
        ),
    }
}
