//! [`Guarded`]: runs a user future as the current node, stops polling it when
//! the node is cancelled, and turns its panics into values.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::sync::Arc;
use super::{Node, NodeKind, enter};
use crate::error::{FailureKind, PanicPayload, TaskFailure};

/// How a guarded future ended.
#[derive(Debug)]
pub(crate) enum Settled<T> {
    Completed(T),
    Panicked(PanicPayload),
    /// The node was cancelled; the future was dropped (its `Drop` ran).
    Cancelled,
}

pin_project! {
    /// Polls `fut` with `node` as the current node.
    ///
    /// Before each poll it checks the node's cancellation flag, so a future
    /// cancelled before its first poll never runs; when the flag is set it
    /// drops the future in place, as the current node, so that `Drop` impls
    /// and nested scopes see who they belong to.
    ///
    /// An error wins over a cancellation that comes after it: while the
    /// future awaits a nested scope that has already failed (and is
    /// finishing: cancelling its children, running its cleanups), it is
    /// polled on as if not cancelled, so that the scope's error reaches the
    /// future, which can return it. The cancellation stays pending: it
    /// takes effect at the first `.await` that is not inside such a scope.
    ///
    /// Dropped, it finishes a task's node (a spawned or local child's),
    /// whose future it is: the task's node ends with it.
    pub(crate) struct Guarded<F> {
        // `None` only while the node is entered (moved into the thread-local).
        node: Option<Arc<Node>>,
        // The waker last registered with the node. The node keeps it until
        // a cancellation takes it (and sets the flag first), so while the
        // node is not cancelled, a poll with the same waker registers
        // nothing: a task that is polled often takes no lock for it.
        registered: Option<Waker>,
        #[pin]
        fut: Option<F>,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Asked through a `Pin<&mut _>`, as in `poll`.
            if this.fut.as_mut().as_pin_mut().is_some() {
                // Dropped mid-flight (the enclosing future was dropped): still
                // drop the user future as its node, and never unwind out of
                // a destructor that may itself run during unwinding.
                let fut = this.fut;
                let dropped = enter(this.node, || {
                    catch_unwind(AssertUnwindSafe(move || {
                        let mut fut = fut;
                        fut.set(None);
                    }))
                });
                if let (Err(payload), Some(node)) = (dropped, this.node.as_ref()) {
                    report_drop_panic(node, PanicPayload::new(payload));
                }
            }
            // A task's node (a local child's too) ends with its future,
            // however it ended and even when it was never polled (the
            // runtime dropped it at shutdown): otherwise the node's parent
            // would wait for it, and the tree show it, forever. It ends
            // here, after the future was dropped, so that the future's
            // `Drop` code ran under a live node. Scopes, supervisors and
            // cleanup phases finish their nodes themselves, after their
            // children.
            if let Some(node) = this.node.as_ref()
                && matches!(node.kind(), NodeKind::Task | NodeKind::Shield)
            {
                node.finish();
            }
        }
    }
}

impl<F> Guarded<F> {
    pub(crate) fn new(node: Arc<Node>, fut: F) -> Self {
        Guarded {
            node: Some(node),
            registered: None,
            fut: Some(fut),
        }
    }

    /// The node the future runs as.
    pub(crate) fn node(&self) -> &Arc<Node> {
        self.node
            .as_ref()
            .unwrap_or_else(|| unreachable!("a node is taken only while its future is polled"))
    }

    /// The node the future runs as, reached through the pin. Unlike
    /// [`node`](Self::node), it borrows no part of the future: a shared
    /// reference over a future that is mid-flight (an async block holding
    /// references into itself) is one that Stacked Borrows takes as
    /// invalidating those references.
    pub(crate) fn node_pinned(self: Pin<&mut Self>) -> &Arc<Node> {
        self.project()
            .node
            .as_ref()
            .unwrap_or_else(|| unreachable!("a node is taken only while its future is polled"))
    }

    /// Whether the future has waited (returned `Pending`): its node then
    /// holds its task's waker, unless a cancellation took it since.
    pub(crate) fn waited(&self) -> bool {
        self.registered.is_some()
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Settled<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let cancelled = match this.node.as_ref() {
            Some(node) => node.is_cancelled() && !node.awaits_failed_scope(),
            // Polled again after it settled: nothing left to run.
            None => return Poll::Pending,
        };
        // Whether the future is still there, asked through a `Pin<&mut _>`:
        // a shared reference to a future that is mid-flight (an async block
        // holding references into itself) is one Miri's Stacked Borrows
        // rejects, as it invalidates those references.
        if cancelled || this.fut.as_mut().as_pin_mut().is_none() {
            return Poll::Ready(drop_future(this.node, this.fut, Settled::Cancelled));
        }
        let mut fut = this.fut.as_mut();
        let polled = enter(this.node, || {
            catch_unwind(AssertUnwindSafe(|| match fut.as_mut().as_pin_mut() {
                Some(fut) => fut.poll(cx),
                None => Poll::Pending,
            }))
        });
        match polled {
            Ok(Poll::Ready(value)) => {
                Poll::Ready(drop_future(this.node, this.fut, Settled::Completed(value)))
            }
            Ok(Poll::Pending) => {
                let registered = this.registered;
                let cancelled = this.node.as_ref().is_some_and(|node| {
                    let current = registered
                        .as_ref()
                        .is_some_and(|waker| waker.will_wake(cx.waker()));
                    if current && !node.is_cancelled() {
                        return false;
                    }
                    if node.register_waker(cx.waker()) {
                        !node.awaits_failed_scope()
                    } else {
                        *registered = Some(cx.waker().clone());
                        false
                    }
                });
                if cancelled {
                    Poll::Ready(drop_future(this.node, this.fut, Settled::Cancelled))
                } else {
                    Poll::Pending
                }
            }
            Err(payload) => {
                let panicked = Settled::Panicked(PanicPayload::new(payload));
                Poll::Ready(drop_future(this.node, this.fut, panicked))
            }
        }
    }
}

/// A future dropped mid-flight panicked in its `Drop`: that is a failure of
/// the nearest scope (for a scope's body, the scope itself, which reports it
/// on to its parent when it finishes), never something to lose.
fn report_drop_panic(node: &Arc<Node>, payload: PanicPayload) {
    let failure = TaskFailure::new(node.name(), node.location(), FailureKind::Panic(payload));
    tracing::warn!(
        target: "tethered::task",
        task = node.name(),
        failure = %failure.summary(),
        "a future panicked while being dropped",
    );
    match Node::enclosing_scope(node) {
        Some(scope) => scope.record_failure(failure, true),
        None => tracing::error!(
            target: "tethered::task",
            failure = %failure,
            "a future panicked while being dropped, with no scope to report to",
        ),
    }
}

/// Drops the user future as its node. A panic from its `Drop` replaces a
/// completion or cancellation (it is a failure, and must not be lost).
fn drop_future<F, T>(
    node: &mut Option<Arc<Node>>,
    fut: Pin<&mut Option<F>>,
    settled: Settled<T>,
) -> Settled<T> {
    let dropped = enter(node, || {
        catch_unwind(AssertUnwindSafe(move || {
            let mut fut = fut;
            fut.set(None);
        }))
    });
    match (dropped, settled) {
        (Ok(()), settled) => settled,
        // A panic while unwinding from an earlier panic: keep the first.
        (Err(_), panicked @ Settled::Panicked(_)) => panicked,
        (Err(payload), _) => Settled::Panicked(PanicPayload::new(payload)),
    }
}
