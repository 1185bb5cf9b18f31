//! A supervised child: a task whose end is counted, logged and reported to
//! its supervisor instead of failing it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::Shared;
use super::stats::Counters;
use crate::cleanup::CleanupOutput;
use crate::error::{FailureKind, SpawnError, TaskError, TaskFailure};
use crate::metrics::ChildMetrics;
use crate::never::Never;
use crate::node::NodeKind;
use crate::outcome::Outcome;
use crate::reason::{CancelKind, CancelReason, IntoCancelReason};
use crate::scope::infallible;
use crate::task::{TaskHandle, spawn_child};
use crate::unwind::CatchUnwind;

/// What a supervised child's future may return: `()`, `Result<(), E>` (an
/// `Err` is a failure, which the child's restart policy answers), or a
/// schedule's result (a [`PeriodicTask`](crate::PeriodicTask) stopped is a
/// clean end; one whose run failed with `OnError::Stop` failed).
///
/// Implemented by tethered for those types; not meant to be implemented
/// elsewhere.
#[diagnostic::on_unimplemented(
    message = "a supervised child's future returns `()`, `Result<(), E>` or a schedule's result, not `{Self}`",
    label = "this child's future returns `{Self}`",
    note = "`Err` (with `E: Display + Debug + Send + Sync + 'static`) or a panic is a failure of the child, counted, logged and answered by its restart policy; to hand a value on, send it over a channel"
)]
pub trait ChildOutput: Send + 'static {
    /// `Err` when the child failed.
    #[doc(hidden)]
    fn into_child_result(self) -> Result<(), TaskError>;
}

// Each type named, rather than a blanket impl over `CleanupOutput`: a
// mistake is then reported with the message above, not a cleanup's.
impl ChildOutput for () {
    fn into_child_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A child that never returns (`async { loop { … } }`, a heartbeat): it
/// ends when it is cancelled.
#[diagnostic::do_not_recommend]
impl ChildOutput for Never {
    fn into_child_result(self) -> Result<(), TaskError> {
        self
    }
}

impl<E> ChildOutput for Result<(), E>
where
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    fn into_child_result(self) -> Result<(), TaskError> {
        CleanupOutput::into_cleanup_result(self)
    }
}

impl ChildOutput for Result<crate::PeriodicStats, crate::PeriodicError> {
    fn into_child_result(self) -> Result<(), TaskError> {
        CleanupOutput::into_cleanup_result(self)
    }
}

/// How a supervised child ended.
#[derive(Debug, Clone)]
pub enum ChildExit {
    /// Its future returned `()` or `Ok(())`.
    Completed,
    /// It returned `Err` or panicked: the failure carries the child's name,
    /// where it was spawned, and the error or panic payload.
    Failed(TaskFailure),
    /// It was cancelled, for this reason.
    Cancelled(CancelReason),
}

impl ChildExit {
    /// Whether the child returned `Err` or panicked.
    pub fn is_failure(&self) -> bool {
        matches!(self, ChildExit::Failed(_))
    }

    /// Whether the child panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, ChildExit::Failed(failure) if failure.panic().is_some())
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Completed => f.write_str("completed"),
            ChildExit::Failed(failure) => f.write_str(&failure.summary()),
            // The reason says it was a cancel (or a timeout, a shutdown...).
            ChildExit::Cancelled(reason) => reason.fmt(f),
        }
    }
}

/// What a child is to its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Started by [`Supervisor::spawn`](crate::Supervisor::spawn).
    Dynamic,
    /// Started by [`Supervisor::shield`](crate::Supervisor::shield).
    Shield,
    /// One start of the restartable child at `index`.
    ///
    /// The index is a `u32`: this is kept in every supervised child's task,
    /// and 8 bytes fewer keep a small child's task future within what is
    /// moved without a call to `memcpy`.
    Static { index: u32, generation: u64 },
}

/// A handle to a supervised child: to cancel it, ask it to stop, or wait
/// for it. Dropping the handle leaves the child running; the supervisor
/// still owns it.
pub struct ChildHandle {
    handle: TaskHandle<'static, ChildExit>,
}

impl ChildHandle {
    /// Waits for the child to end and returns how it ended.
    pub async fn join(self) -> ChildExit {
        exit_of(self.handle.join().await)
    }

    /// Cancels the child (see [`TaskHandle::cancel`]).
    #[track_caller]
    pub fn cancel(&self, reason: impl IntoCancelReason) {
        self.handle
            .cancel(reason.into_cancel_reason(Location::caller()));
    }

    /// Asks the child to stop (see [`TaskHandle::stop`]).
    #[track_caller]
    pub fn stop(&self, reason: impl IntoCancelReason) {
        self.handle
            .stop(reason.into_cancel_reason(Location::caller()));
    }

    /// Cancels the child and waits for it to end.
    #[track_caller]
    pub fn cancel_and_wait(self, reason: impl IntoCancelReason) -> impl Future<Output = ChildExit> {
        let ended = self
            .handle
            .cancel_and_wait(reason.into_cancel_reason(Location::caller()));
        async move { exit_of(ended.await) }
    }

    /// Asks the child to stop, cancels it after `grace`, and waits for it.
    #[track_caller]
    pub fn stop_and_wait(
        self,
        reason: impl IntoCancelReason,
        grace: std::time::Duration,
    ) -> impl Future<Output = ChildExit> {
        let ended = self
            .handle
            .stop_and_wait(reason.into_cancel_reason(Location::caller()), grace);
        async move { exit_of(ended.await) }
    }

    /// Whether the child has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// The child's name.
    pub fn name(&self) -> Option<&str> {
        self.handle.name()
    }

    /// Where the child was spawned.
    pub fn location(&self) -> &'static Location<'static> {
        self.handle.location()
    }

    pub(crate) fn node(&self) -> &crate::node::sync::Arc<crate::node::Node> {
        self.handle.node()
    }
}

impl fmt::Debug for ChildHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ChildHandle").field(&self.handle).finish()
    }
}

fn exit_of(outcome: Outcome<ChildExit>) -> ChildExit {
    match outcome {
        Outcome::Completed(exit) => exit,
        Outcome::Cancelled(reason) => ChildExit::Cancelled(reason),
        // The child's own panics are caught inside it; this one came from
        // tethered's bookkeeping, and is still reported rather than lost.
        Outcome::Panicked(payload) => ChildExit::Failed(TaskFailure::new(
            None,
            Location::caller(),
            FailureKind::Panic(payload),
        )),
        Outcome::Failed(never) => match *never {},
    }
}

/// Starts `future` as a child of the supervisor, in the given role.
///
/// Refused once the supervisor has started shutting down.
#[track_caller]
pub(crate) fn spawn_supervised<F>(
    shared: &Arc<Shared>,
    kind: NodeKind,
    role: Role,
    metrics: ChildMetrics,
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    future: F,
) -> Result<ChildHandle, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: ChildOutput,
{
    // Counted before the task exists, so that its end cannot come first.
    Counters::add(&shared.counters.starts.started);
    metrics.started();
    let child = Supervised {
        future: CatchUnwind::new(future),
        end: EndGuard {
            shared: shared.clone(),
            role: Some(role),
            metrics,
        },
    };
    spawn_child(
        &shared.node,
        kind,
        Some(name),
        location,
        tokio::time::Instant::now(),
        child,
        infallible(),
        true,
    )
    .map(|handle| ChildHandle { handle })
    // The refused future was dropped unpolled: its guard counted it as
    // cancelled, which keeps `live` right.
    .ok_or_else(|| SpawnError::closed(shared.node.name()))
}

pin_project! {
    /// A supervised child's future: the user's, then the count, log and
    /// report of how it ended.
    ///
    /// Written by hand rather than as an `async` block, which would keep the
    /// user's future twice (once as captured, once as awaited): every byte
    /// here is paid in every child's task.
    struct Supervised<F> {
        #[pin]
        future: CatchUnwind<F>,
        end: EndGuard,
    }
}

impl<F> Future for Supervised<F>
where
    F: Future,
    F::Output: ChildOutput,
{
    type Output = ChildExit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ChildExit> {
        let this = self.project();
        let failure = match ready!(this.future.poll(cx)) {
            Ok(output) => output.into_child_result().err().map(FailureKind::Error),
            Err(payload) => Some(FailureKind::Panic(payload)),
        };
        Poll::Ready(this.end.ended(failure))
    }
}

/// Counts, logs and reports the end of a child, whichever way it ends: when
/// its future returns, or, when it is cancelled, as the future is dropped.
struct EndGuard {
    shared: Arc<Shared>,
    /// `None` once the end is counted.
    role: Option<Role>,
    metrics: ChildMetrics,
}

impl EndGuard {
    fn ended(&mut self, failure: Option<FailureKind>) -> ChildExit {
        let exit = match failure {
            None => ChildExit::Completed,
            Some(kind) => {
                let (name, location) = identity();
                ChildExit::Failed(TaskFailure::new(name.as_deref(), location, kind))
            }
        };
        if let Some(role) = self.role.take() {
            self.metrics.ended(&exit);
            self.shared.child_ended(role, &exit);
        }
        exit
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let Some(role) = self.role.take() else {
            return;
        };
        // Dropped before its future returned: the child was cancelled (or
        // refused), and only this destructor can say so.
        let current = crate::node::current();
        let reason = current
            .as_ref()
            .and_then(|node| node.reason())
            .unwrap_or_else(|| {
                // Refused, the future is dropped where the spawn was asked
                // for, whose node is the caller's: its location is the
                // nearest one that means something to the user.
                let location = current
                    .as_ref()
                    .map_or_else(Location::caller, |node| node.location());
                CancelReason::at(CancelKind::Shutdown, location)
                    .with_message("the supervisor refused or dropped the child")
            });
        let exit = ChildExit::Cancelled(reason);
        self.metrics.ended(&exit);
        self.shared.child_ended(role, &exit);
    }
}

/// The name and spawn location of the child being polled.
fn identity() -> (Option<String>, &'static Location<'static>) {
    match crate::node::current() {
        Some(node) => (node.name().map(str::to_owned), node.location()),
        None => (None, Location::caller()),
    }
}
