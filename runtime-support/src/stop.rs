//! Soft stops, observed: [`stop_requested`] and [`is_stopping`] for the
//! task that is running, and [`StopSignal`], an owned signal to carry into
//! code that runs elsewhere.
//!
//! A stop is observed through a node of the tree: the task (or scope, or
//! supervisor) it is asked of. `stop_requested()` takes the node of the task
//! that calls it. Called where there is none (a task that tethered did not
//! spawn, such as the one a server library polls its shutdown future on),
//! there is nothing whose stop it could see: instead of waiting for ever in
//! silence, it panics and says what to do. A [`StopSignal`], taken in the
//! tethered task and moved there, works anywhere.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use crate::node::sync::Arc;
use crate::node::{self, Node};
use crate::reason::CancelReason;

/// Whether the current task has been asked to stop (or was cancelled).
///
/// Outside any tethered task nothing can be asked to stop: it is `false`,
/// and the first such call logs a `tracing` warning (target
/// `tethered::stop`), since a loop that polls it there would run for ever.
/// Take a [`StopSignal`] in the tethered task and ask it instead.
///
/// ```
/// assert!(!tethered::is_stopping()); // outside any tethered task
/// ```
#[track_caller]
pub fn is_stopping() -> bool {
    match node::current() {
        Some(node) => node.is_stopping(),
        None => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "tethered::stop",
                    location = %Location::caller(),
                    "`tethered::is_stopping()` outside any tethered task is always false: \
                     nothing there can be asked to stop; take a `StopSignal` in the tethered \
                     task (`scope.stop_signal()`, `tethered::current().stop_signal()`) and ask it",
                );
            }
            false
        }
    }
}

/// Resolves, with the reason, once the current task is asked to stop.
///
/// A stop is a request to finish the work in hand and take no more. The
/// task is the one that calls `stop_requested()`, at that moment: the
/// future may then be moved and awaited anywhere.
///
/// # Panics
///
/// When called outside any tethered task: nothing there can be asked to
/// stop, so the future could never resolve. The trap is a future polled by
/// a server library's own task, such as axum's `with_graceful_shutdown(async
/// { tethered::stop_requested().await })`: the `async` block calls
/// `stop_requested()` only when first polled, there. Take a [`StopSignal`]
/// in the tethered task instead, and move it in:
/// `with_graceful_shutdown(scope.stop_signal().stopped())`.
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
#[track_caller]
pub fn stop_requested() -> StopRequested {
    match node::current() {
        Some(node) => StopRequested::of(node),
        None => panic!(
            "`tethered::stop_requested()` called outside any tethered task: nothing there can \
             be asked to stop, so it would never resolve. If this runs in a task a library \
             spawned (a server's graceful-shutdown future, say), take a `StopSignal` in the \
             tethered task, with `scope.stop_signal()` or `tethered::current().stop_signal()`, \
             and move it in: `signal.stopped()` (or `signal.wait()`) works from any task"
        ),
    }
}

/// The future returned by [`stop_requested`] and [`StopSignal::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct StopRequested {
    node: Arc<Node>,
    /// The waker registered with the node by the last poll. Polled again
    /// with the same waker and no stop yet, the future only reads the
    /// node's flags: a loop that selects on it every turn takes no lock.
    registered: Option<Waker>,
}

impl StopRequested {
    fn of(node: Arc<Node>) -> Self {
        StopRequested {
            node,
            registered: None,
        }
    }
}

impl Future for StopRequested {
    type Output = CancelReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CancelReason> {
        let this = self.get_mut();
        let node = &this.node;
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
            .field("task", &self.node.name())
            .finish()
    }
}

/// An owned signal of one task's, scope's or supervisor's stop: `'static`,
/// `Send`, cheap to clone, and usable from any task, tethered or not.
///
/// Take it where the stop applies (`scope.stop_signal()`,
/// `scope_handle.stop_signal()`, `supervisor.stop_signal()`,
/// `tethered::current().stop_signal()`), then move it into the code that
/// needs to see the stop: a server library's graceful-shutdown future, a
/// thread, a plain tokio task. A stop reaches it when the node is asked to
/// stop or is cancelled (a cancellation asks to stop too), whichever comes
/// first; a signal taken after that sees it at once.
///
/// `.await` on a signal (or [`wait`](Self::wait)) resolves with the
/// reason; [`stopped`](Self::stopped) resolves with `()`, the shape graceful
/// shutdown futures take.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// Scope::run(async |scope| {
///     let signal = scope.stop_signal();
///     // A task tethered did not spawn, as a server library's would be.
///     let server = tokio::spawn(async move {
///         let reason = signal.await;
///         format!("draining: {}", reason.message().unwrap())
///     });
///     scope.stop("deploy");
///     assert_eq!(server.await.unwrap(), "draining: deploy");
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct StopSignal {
    node: Arc<Node>,
}

impl StopSignal {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        StopSignal { node }
    }

    /// Whether the stop has come (or the node was cancelled).
    pub fn is_stopping(&self) -> bool {
        self.node.is_stopping()
    }

    /// Why the node was asked to stop, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        self.node.stop_reason()
    }

    /// Resolves, with the reason, once the node is asked to stop.
    pub fn wait(&self) -> StopRequested {
        StopRequested::of(self.node.clone())
    }

    /// Resolves, with `()`, once the node is asked to stop: what a graceful
    /// shutdown future is, as axum's and hyper's take it
    /// (`serve(…).with_graceful_shutdown(signal.stopped())`).
    pub fn stopped(self) -> impl Future<Output = ()> + Send + 'static {
        let waiting = self.wait();
        async move {
            waiting.await;
        }
    }
}

impl IntoFuture for StopSignal {
    type Output = CancelReason;
    type IntoFuture = StopRequested;

    fn into_future(self) -> StopRequested {
        StopRequested::of(self.node)
    }
}

impl fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSignal")
            .field("of", &self.node.name())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}
