//! [`current()`]: the task (or scope body, or cleanup) that is running now.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;

use crate::node::sync::Arc;
use crate::node::{self, Node, NodeKind};
use crate::reason::CancelReason;
use crate::stop::StopSignal;

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

    /// An owned [`StopSignal`] for this task (or scope body, or cleanup),
    /// to move into code that runs elsewhere (a server's shutdown future,
    /// a plain tokio task); `None` outside any tethered task.
    pub fn stop_signal(&self) -> Option<StopSignal> {
        self.node.clone().map(StopSignal::new)
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
