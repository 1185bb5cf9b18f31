//! [`TaskHandle`]: a child task's handle, branded with its scope's lifetime.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

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
    node: HandleNode,
    join: Join<T, E>,
    _scope: PhantomData<&'scope ()>,
}

/// Where a child's outcome comes from: its tokio task, or, for a local
/// child (polled by its scope's own task), the channel it ends with.
enum Join<T, E> {
    Spawned(JoinHandle<Outcome<T, E>>),
    Local(tokio::sync::oneshot::Receiver<Outcome<T, E>>),
}

impl<T, E> Join<T, E> {
    fn poll(&mut self, node: &Node, cx: &mut Context<'_>) -> Poll<Outcome<T, E>> {
        match self {
            Join::Spawned(join) => Pin::new(join).poll(cx).map(|joined| settle(node, joined)),
            Join::Local(ended) => {
                Pin::new(ended).poll(cx).map(|ended| {
                    // No outcome sent: the child was dropped mid-flight, with the
                    // scope's future that held it.
                    ended.unwrap_or_else(|_| {
                        Outcome::Cancelled(node.reason().unwrap_or_else(|| {
                            CancelReason::at(CancelKind::Dropped, node.location())
                        }))
                    })
                })
            }
        }
    }

    fn wait<'a>(&'a mut self, node: &'a Node) -> impl Future<Output = Outcome<T, E>> + 'a {
        std::future::poll_fn(move |cx| self.poll(node, cx))
    }
}

impl<T, E> TaskHandle<'_, T, E> {
    /// Waits for the task to end and returns how it ended.
    ///
    /// If the future returned by `join` is dropped (the caller was
    /// cancelled), the task is unaffected, and its scope still joins it.
    ///
    /// Inside a scope, a child that fails cancels the scope, and with it
    /// whoever awaits `join` in that scope: the failure reaches the caller
    /// through the scope's [`ScopeError`](crate::ScopeError). A joiner sees
    /// [`Outcome::Failed`] or [`Outcome::Panicked`] only when it was polled
    /// before the cancellation reached it, or where failures do not cancel
    /// their siblings.
    pub async fn join(mut self) -> Outcome<T, E> {
        self.join.wait(&self.node).await
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
            let node = &self.node;
            match tokio::time::timeout(grace, self.join.wait(node)).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => {
                    node.cancel(reason, false);
                    self.join.wait(node).await
                }
            }
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
        match &self.join {
            Join::Spawned(join) => join.is_finished(),
            Join::Local(_) => self.node.is_settled(),
        }
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

    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
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

/// Spawns `fut` as a child of `parent`; `split` tells success from failure.
///
/// Returns `None`, dropping `fut` unpolled, when `refuse_when_closed` is set
/// and the parent is closing or closed.
/// How a task's output becomes its outcome: which part is a failure, and how
/// to show a failure's error.
pub(crate) struct Split<S, E> {
    pub(crate) split: S,
    pub(crate) erase: fn(StdArc<E>) -> TaskError,
}

impl<S, E> Split<S, E> {
    pub(crate) fn new(split: S, erase: fn(StdArc<E>) -> TaskError) -> Self {
        Split { split, erase }
    }
}

/// `#[track_caller]`, as every function from the user's spawn down to
/// here: tokio records its caller as the task's spawn location (which
/// tokio-console shows).
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub(crate) fn spawn_child<'s, F, T, E, S>(
    parent: &Arc<Node>,
    kind: NodeKind,
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    started: Instant,
    fut: F,
    split: Split<S, E>,
    refuse_when_closed: bool,
) -> Option<TaskHandle<'s, T, E>>
where
    F: Future + Send + 'static,
    F::Output: Send,
    S: FnOnce(F::Output) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + Sync + 'static,
{
    let node = if refuse_when_closed {
        Node::try_new(kind, name, location, started, parent)?
    } else {
        Node::new(kind, name, location, started, Some(parent.clone()))
    };
    // Under its scope's span, whichever task spawns it (evaluated only
    // when a subscriber wants the span).
    let span = tracing::debug_span!(
        target: "tethered::task",
        parent: parent_span(parent),
        "task",
        name = node.name(),
        location = %location,
        shielded = kind == NodeKind::Shield,
    );
    let task = TaskFuture {
        split: Some(split),
        // Out of line, and only when a subscriber wants the span: the
        // task's future stays small, and every byte of it is paid per task.
        extra: (!span.is_disabled()).then(|| {
            Box::new(Extra {
                span: Some(span),
                draining: None,
            })
        }),
        // Finishes the node when dropped, as a task's node ends with it.
        guarded: Guarded::new(node.clone(), fut),
    };
    // With tokio's unstable API, the task carries its tethered name into
    // tokio's own task span (and so into tokio-console).
    #[cfg(tokio_unstable)]
    let join = {
        let builder = tokio::task::Builder::new();
        let builder = match node.name() {
            Some(name) => builder.name(name),
            None => builder,
        };
        builder
            .spawn(task)
            .unwrap_or_else(|error| panic!("spawning a task failed: {error}"))
    };
    #[cfg(not(tokio_unstable))]
    let join = tokio::spawn(task);
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    node.set_tokio_task(join.id());
    Some(TaskHandle {
        node: HandleNode(node),
        join: Join::Spawned(join),
        _scope: PhantomData,
    })
}

impl<T, E> TaskHandle<'_, T, E> {
    /// The handle of a local child, whose outcome comes on `ended`.
    pub(crate) fn local(
        node: Arc<Node>,
        ended: tokio::sync::oneshot::Receiver<Outcome<T, E>>,
    ) -> Self {
        TaskHandle {
            node: HandleNode(node),
            join: Join::Local(ended),
            _scope: PhantomData,
        }
    }
}

/// The span a child of `parent` hangs from: its scope's (or supervisor's),
/// or, outside any, the span the spawning code is in.
pub(crate) fn parent_span(parent: &Node) -> Option<tracing::Id> {
    match parent.span() {
        Some(span) => span.id(),
        None => tracing::Span::current().id(),
    }
}

pin_project! {
    /// The future of a spawned task: runs the user's future as its node,
    /// turns how it ended into an [`Outcome`], reports failures to the scope,
    /// then waits for scopes nested in it that were dropped mid-flight and
    /// are still finishing their cancellation.
    ///
    /// Written by hand rather than as an `async fn`: an `async fn` keeps its
    /// arguments apart from its locals, so the user's future would take its
    /// room twice in every task.
    struct TaskFuture<F: Future, S, T, E> {
        split: Option<Split<S, E>>,
        // What few tasks need, out of line so that it costs the others 8
        // bytes.
        extra: Option<Box<Extra<T, E>>>,
        // Last, so dropped last: the task's node finishes once everything
        // else the task held is gone.
        #[pin]
        guarded: Guarded<F>,
    }
}

/// What a task keeps out of line.
struct Extra<T, E> {
    /// Its span, when a subscriber wants it.
    span: Option<tracing::Span>,
    /// Its outcome, kept while scopes nested in the task finish.
    draining: Option<Outcome<T, E>>,
}

impl<F, S, T, E> Future for TaskFuture<F, S, T, E>
where
    F: Future,
    S: FnOnce(F::Output) -> Result<T, E>,
{
    type Output = Outcome<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T, E>> {
        let mut this = self.project();
        let (span, draining) = match this.extra.as_deref_mut() {
            Some(Extra { span, draining }) => (span.as_ref(), draining.take()),
            None => (None, None),
        };
        let entered = span.map(tracing::Span::enter);
        let outcome = match draining {
            Some(outcome) => outcome,
            None => {
                let Poll::Ready(settled) = this.guarded.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                let node = this.guarded.node();
                // Detached, and ending on another worker than the one that
                // spawned it, a task leaves its memory to its node to free
                // (see `Node::settle_task`). One that waited left its waker
                // there already.
                if !this.guarded.waited() && node.born_elsewhere() && node.is_detached() {
                    node.settle_task(cx.waker());
                } else {
                    node.set_settled();
                }
                classify(node, settled, this.split.take())
            }
        };
        let node = this.guarded.node();
        if node.had_children() && !node.poll_children_done(cx.waker()) {
            drop(entered);
            let extra = this.extra.get_or_insert_with(|| {
                Box::new(Extra {
                    span: None,
                    draining: None,
                })
            });
            extra.draining = Some(outcome);
            return Poll::Pending;
        }
        Poll::Ready(outcome)
    }
}

/// A handle's reference to its task's node, which tells the node when the
/// handle is dropped (see `Node::settle_task`). A field of its own rather
/// than a `Drop` on the handle, which would make the borrow checker hold the
/// scope's borrow until every handle is dropped.
struct HandleNode(Arc<Node>);

impl std::ops::Deref for HandleNode {
    type Target = Arc<Node>;

    fn deref(&self) -> &Arc<Node> {
        &self.0
    }
}

impl Drop for HandleNode {
    fn drop(&mut self) {
        self.0.detach();
    }
}

/// Turns how the user's future ended into its outcome, reporting a failure
/// to the scope.
pub(crate) fn classify<O, T, E>(
    node: &Arc<Node>,
    settled: Settled<O>,
    split: Option<Split<impl FnOnce(O) -> Result<T, E>, E>>,
) -> Outcome<T, E> {
    match (settled, split) {
        (Settled::Completed(output), Some(split)) => match (split.split)(output) {
            Ok(value) => {
                node.set_completed();
                Outcome::Completed(value)
            }
            Err(error) => {
                let error = StdArc::new(error);
                report(node, FailureKind::Error((split.erase)(error.clone())));
                Outcome::Failed(error)
            }
        },
        (Settled::Panicked(payload), _) => {
            report(node, FailureKind::Panic(payload.clone()));
            Outcome::Panicked(payload)
        }
        (Settled::Cancelled, _) | (Settled::Completed(_), None) => Outcome::Cancelled(
            node.reason()
                .unwrap_or_else(|| CancelReason::at(CancelKind::Explicit, node.location())),
        ),
    }
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
    if let Some(parent) = node
        .parent()
        .filter(|parent| parent.kind() == NodeKind::Scope)
    {
        parent.account_failed(node, failure.clone());
    }
    match node.parent().and_then(Node::enclosing_scope) {
        Some(scope) => scope.record_failure(failure, true),
        None => tracing::error!(
            target: "tethered::task",
            failure = %failure,
            "task failed with no scope to report to",
        ),
    }
}
