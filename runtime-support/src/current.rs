//! [`current()`]: the task (or scope body, or cleanup) that is running now,
//! and the soft-stop signals [`stop_requested`] and [`is_stopping`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::node::sync::Arc;
use crate::node::{self, Node, NodeKind};
use crate::reason::CancelReason;

/// A view of the tethered task, scope body or cleanup phase running now.
///
/// Outside any tethered task every query answers "nothing": no name, no
/// reason, not stopping.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// Scope::run(async |scope| {
///     let worker = scope.spawn_named("worker", async {
///         struct Report;
///         impl Drop for Report {
///             fn drop(&mut self) {
///                 // Drop runs as the task, so it can tell why it ends.
///                 let reason = tethered::current().cancel_reason().unwrap();
///                 assert_eq!(reason.message(), Some("enough"));
///             }
///         }
///         let _report = Report;
///         std::future::pending::<()>().await
///     });
///     tokio::task::yield_now().await;
///     worker.cancel("enough");
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use]
pub fn current() -> Current {
    Current {
        node: node::current(),
    }
}

/// The name of the current node, for [`CancelReason::origin`].
pub(crate) fn current_name() -> Option<Cow<'static, str>> {
    node::current().and_then(|node| node.name_cow())
}

/// Whether the current task has been asked to stop (or was cancelled).
///
/// ```
/// assert!(!tethered::is_stopping()); // outside any tethered task
/// ```
pub fn is_stopping() -> bool {
    node::current().is_some_and(|node| node.is_stopping())
}

/// Resolves, with the reason, once the current task is asked to stop.
///
/// A stop is a request to finish the work in hand and take no more. Outside
/// any tethered task the future never resolves (nothing can stop it).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// let (jobs, mut queue) = tokio::sync::mpsc::channel::<u32>(8);
/// let handled = Scope::run(async |scope| {
///     let consumer = scope.spawn(async move {
///         let mut handled = Vec::new();
///         loop {
///             tokio::select! {
///                 biased;
///                 reason = tethered::stop_requested() => {
///                     assert_eq!(reason.message(), Some("draining"));
///                     return handled; // finish cleanly, take no more work
///                 }
///                 Some(job) = queue.recv() => handled.push(job),
///             }
///         }
///     });
///     jobs.send(1).await.unwrap();
///     tokio::task::yield_now().await; // let the consumer take job 1
///     consumer.stop("draining");
///     consumer.join().await.unwrap()
/// })
/// .await
/// .unwrap();
/// assert_eq!(handled, [1]);
/// # }
/// ```
pub fn stop_requested() -> StopRequested {
    StopRequested {
        node: node::current(),
        registered: None,
    }
}

/// The future returned by [`stop_requested`].
#[must_use = "futures do nothing unless polled"]
pub struct StopRequested {
    node: Option<Arc<Node>>,
    /// The waker registered with the node by the last poll. Polled again
    /// with the same waker and no stop yet, the future only reads the
    /// node's flags: a loop that selects on it every turn takes no lock.
    registered: Option<Waker>,
}

impl Future for StopRequested {
    type Output = CancelReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CancelReason> {
        let this = self.get_mut();
        let Some(node) = &this.node else {
            return Poll::Pending;
        };
        // The registered waker stays with the node until a stop wakes it,
        // and the stop sets the flag before it does.
        if !node.is_stopping()
            && this
                .registered
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        match node.poll_stop(cx.waker()) {
            Some(reason) => Poll::Ready(reason),
            None => {
                this.registered = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl fmt::Debug for StopRequested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopRequested")
            .field("task", &self.node.as_ref().and_then(|node| node.name()))
            .finish()
    }
}

/// The running task, scope body or cleanup phase; see [`current()`].
#[derive(Clone)]
pub struct Current {
    node: Option<Arc<Node>>,
}

impl Current {
    /// Whether code is running inside a tethered task or scope.
    pub fn is_tethered(&self) -> bool {
        self.node.is_some()
    }

    /// The task's (or scope's) name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.node.as_ref().and_then(|node| node.name())
    }

    /// Where the task was spawned (or the scope created).
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.node.as_ref().map(|node| node.location())
    }

    /// Why the task is being cancelled, if it is. In a cleanup, the reason
    /// its scope was cancelled.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        let node = self.node.as_ref()?;
        match node.kind() {
            NodeKind::Cleanup => node.parent().and_then(|scope| scope.reason()),
            _ => node.reason(),
        }
    }

    /// Why the task was asked to stop, if it was.
    pub fn stop_reason(&self) -> Option<CancelReason> {
        self.node.as_ref().and_then(|node| node.stop_reason())
    }

    /// Whether the task has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.as_ref().is_some_and(|node| node.is_cancelled())
    }

    /// Whether the task has been asked to stop (or cancelled).
    pub fn is_stopping(&self) -> bool {
        self.node.as_ref().is_some_and(|node| node.is_stopping())
    }
}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Current")
            .field("name", &self.name())
            .field("cancelled", &self.is_cancelled())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}
