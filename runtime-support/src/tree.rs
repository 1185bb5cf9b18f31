//! [`tree()`]: a snapshot of every live scope and task.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use tokio::time::Instant;

use crate::node::sync::Arc;
use crate::node::{self, Node, NodeKind};
use crate::reason::CancelReason;

/// Takes a snapshot of the live task tree: every scope, task, shield and
/// cleanup phase, with names, spawn locations, states and ages.
///
/// `Display` prints it as an indented tree; shutdown reports use it to name
/// what is still running.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// Scope::builder()
///     .name("server")
///     .run(async |scope| {
///         let conn = scope.spawn_named("conn-1", std::future::pending::<()>());
///         let tree = tethered::tree();
///         let text = tree.to_string();
///         assert!(text.contains("scope `server`"));
///         assert!(text.contains("task `conn-1`"));
///         conn.cancel("done");
///     })
///     .await
///     .unwrap();
/// # }
/// ```
pub fn tree() -> TaskTree {
    let now = Instant::now();
    TaskTree {
        roots: node::root_nodes()
            .iter()
            .map(|root| TreeEntry::capture(root, now))
            .collect(),
    }
}

/// A snapshot of the live task tree; see [`tree()`].
#[derive(Debug, Clone)]
pub struct TaskTree {
    roots: Vec<TreeEntry>,
}

impl TaskTree {
    /// The root scopes (scopes with no tethered task around them).
    pub fn roots(&self) -> &[TreeEntry] {
        &self.roots
    }

    /// Every entry, depth first.
    pub fn iter(&self) -> impl Iterator<Item = &TreeEntry> {
        let mut stack: Vec<&TreeEntry> = self.roots.iter().rev().collect();
        std::iter::from_fn(move || {
            let entry = stack.pop()?;
            stack.extend(entry.children.iter().rev());
            Some(entry)
        })
    }

    /// Number of entries in the snapshot.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether nothing is running.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// What an entry of the tree stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A scope.
    Scope,
    /// A task.
    Task,
    /// A shielded task.
    Shield,
    /// A scope's cleanup phase.
    Cleanup,
    /// A [`Supervisor`](crate::Supervisor).
    Supervisor,
}

/// What an entry is doing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EntryState {
    /// Running normally.
    Running,
    /// Asked to stop.
    Stopping(CancelReason),
    /// Cancelled, and finishing its cancellation.
    Cancelling(CancelReason),
    /// Its own code has ended (a scope's body returned, a task's future
    /// finished); it is waiting for its children.
    Joining,
    /// Its children are done and its cleanups are running.
    InCleanup,
    /// Its future was dropped; it is finishing on the runtime.
    Orphaned(CancelReason),
}

impl EntryState {
    /// What `node` is doing now.
    pub(crate) fn of(node: &Node) -> Self {
        match (node.reason(), node.stop_reason()) {
            _ if node.is_in_cleanup() => EntryState::InCleanup,
            (Some(reason), _) if node.is_orphaned() => EntryState::Orphaned(reason),
            (Some(reason), _) => EntryState::Cancelling(reason),
            (None, _) if node.is_joining() => EntryState::Joining,
            (None, Some(reason)) => EntryState::Stopping(reason),
            (None, None) => EntryState::Running,
        }
    }
}

impl fmt::Display for EntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryState::Running => f.write_str("running"),
            EntryState::Stopping(reason) => write!(f, "stopping: {reason}"),
            EntryState::Cancelling(reason) => write!(f, "cancelling: {reason}"),
            EntryState::Joining => f.write_str("joining its children"),
            EntryState::InCleanup => f.write_str("in cleanup"),
            EntryState::Orphaned(reason) => write!(f, "orphaned: {reason}"),
        }
    }
}

/// One scope or task in a [`TaskTree`].
#[derive(Debug, Clone)]
pub struct TreeEntry {
    kind: EntryKind,
    name: Option<String>,
    location: &'static Location<'static>,
    state: EntryState,
    age: Duration,
    children: Vec<TreeEntry>,
}

impl TreeEntry {
    fn capture(node: &Arc<Node>, now: Instant) -> Self {
        let kind = match node.kind() {
            NodeKind::Scope => EntryKind::Scope,
            NodeKind::Task => EntryKind::Task,
            NodeKind::Shield => EntryKind::Shield,
            NodeKind::Cleanup => EntryKind::Cleanup,
            NodeKind::Supervisor => EntryKind::Supervisor,
        };
        let state = EntryState::of(node);
        TreeEntry {
            kind,
            name: node.name().map(str::to_owned),
            location: node.location(),
            state,
            age: now.saturating_duration_since(node.started()),
            children: node
                .children()
                .iter()
                .map(|child| TreeEntry::capture(child, now))
                .collect(),
        }
    }

    /// Scope, task, shield or cleanup.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where it was spawned or created.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// What it is doing.
    pub fn state(&self) -> &EntryState {
        &self.state
    }

    /// How long it has been alive.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Its live children.
    pub fn children(&self) -> &[TreeEntry] {
        &self.children
    }

    fn fmt_indented(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let kind = match self.kind {
            EntryKind::Scope => "scope",
            EntryKind::Task => "task",
            EntryKind::Shield => "shield",
            EntryKind::Cleanup => "cleanup",
            EntryKind::Supervisor => "supervisor",
        };
        write!(f, "{:indent$}{kind}", "", indent = depth * 2)?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        write!(f, " at {} [", self.location)?;
        write!(f, "{}", self.state)?;
        // Millisecond precision: nanoseconds are noise in a tree dump.
        let age = Duration::from_millis(self.age.as_millis().try_into().unwrap_or(u64::MAX));
        writeln!(f, ", age {age:?}]")?;
        for child in &self.children {
            child.fmt_indented(f, depth + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for TreeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_indented(f, 0)
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.roots.is_empty() {
            return f.write_str("(no live tasks)\n");
        }
        for root in &self.roots {
            root.fmt_indented(f, 0)?;
        }
        Ok(())
    }
}
