//! [`tree()`]: a snapshot of every live scope and task.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use tokio::time::Instant;

use crate::node::sync::Arc;
use crate::node::{self, Node, NodeKind};
use crate::reason::CancelReason;
use crate::wait::WaitSite;

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
    // Depth first, with a stack of our own: a tree may be deeper than this
    // thread's stack (each level of task → scope nesting is a task).
    let mut flat = Vec::new();
    let mut walk: Vec<(Arc<Node>, Option<usize>)> = node::root_nodes()
        .into_iter()
        .rev()
        .map(|root| (root, None))
        .collect();
    while let Some((node, parent)) = walk.pop() {
        let index = flat.len();
        flat.push((TreeEntry::capture(&node, now), parent));
        walk.extend(
            node.children()
                .into_iter()
                .rev()
                .map(|child| (child, Some(index))),
        );
    }
    TaskTree {
        roots: assemble(flat),
    }
}

/// Nests entries listed depth first, each with the index of its parent in
/// the list, without recursion: every entry comes after its parent, so
/// taking them from the last one moves each entry into its parent after
/// all of its own children have been moved into it.
fn assemble(flat: Vec<(TreeEntry, Option<usize>)>) -> Vec<TreeEntry> {
    let parents: Vec<Option<usize>> = flat.iter().map(|(_, parent)| *parent).collect();
    let mut entries: Vec<Option<TreeEntry>> =
        flat.into_iter().map(|(entry, _)| Some(entry)).collect();
    let mut roots = Vec::new();
    for index in (0..entries.len()).rev() {
        let Some(mut entry) = entries[index].take() else {
            continue;
        };
        // Pushed last child first.
        entry.children.reverse();
        match parents[index].and_then(|parent| entries[parent].as_mut()) {
            Some(parent) => parent.children.push(entry),
            None => roots.push(entry),
        }
    }
    roots.reverse();
    roots
}

/// A snapshot of the live task tree; see [`tree()`].
///
/// However deep the tree, nothing done with the snapshot recurses
/// (capturing, printing, cloning, dropping or serializing it): a tree can
/// be deeper than a thread's stack.
///
/// With the `serde` feature, it implements `serde::Serialize`, as a flat
/// list of entries, depth first, each with its depth and the index of its
/// parent (the book's task-tree chapter has the format).
#[derive(Clone)]
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
        depth_first(&self.roots).map(|(_, entry)| entry)
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

/// Every entry under `roots` with its depth (0 for a root), depth first.
pub(crate) fn depth_first(roots: &[TreeEntry]) -> impl Iterator<Item = (usize, &TreeEntry)> {
    let mut stack: Vec<(usize, &TreeEntry)> = roots.iter().rev().map(|root| (0, root)).collect();
    std::iter::from_fn(move || {
        let (depth, entry) = stack.pop()?;
        stack.extend(entry.children.iter().rev().map(|child| (depth + 1, child)));
        Some((depth, entry))
    })
}

/// How deep the printed tree indents; deeper entries are printed at this
/// indentation with their depth written out, so that the text stays linear
/// in the size of the tree.
pub(crate) const MAX_INDENT: usize = 32;

/// One scope or task in a [`TaskTree`].
///
/// `Debug` shows the entry itself and how many children it has;
/// [`TaskTree`]'s `Debug` and `Display` show the whole tree.
pub struct TreeEntry {
    kind: EntryKind,
    name: Option<String>,
    location: &'static Location<'static>,
    state: EntryState,
    waiting_at: Option<&'static WaitSite>,
    age: Duration,
    children: Vec<TreeEntry>,
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    tokio_task: Option<tokio::task::Id>,
}

impl TreeEntry {
    /// The entry for `node`, without its children.
    fn capture(node: &Node, now: Instant) -> Self {
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
            waiting_at: node.waiting_at(),
            age: now.saturating_duration_since(node.started()),
            children: Vec::new(),
            #[cfg(all(tokio_unstable, feature = "taskdump"))]
            tokio_task: node.tokio_task(),
        }
    }

    /// A copy of this entry without its children.
    fn shallow_copy(&self) -> Self {
        TreeEntry {
            kind: self.kind,
            name: self.name.clone(),
            location: self.location,
            state: self.state.clone(),
            waiting_at: self.waiting_at,
            age: self.age,
            children: Vec::new(),
            #[cfg(all(tokio_unstable, feature = "taskdump"))]
            tokio_task: self.tokio_task,
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

    /// The `.await` its code was last polled at, for code that tethered's
    /// macros expanded (`#[scoped]` fns, `#[tethered::main]`,
    /// `#[tethered::test]`, and the futures of `spawn!` in them): where a
    /// task that does not end is stuck. `None` for code they did not
    /// expand, or not yet at an `.await`.
    pub fn waiting_at(&self) -> Option<&'static WaitSite> {
        self.waiting_at
    }

    /// Its live children.
    pub fn children(&self) -> &[TreeEntry] {
        &self.children
    }

    /// The tokio task a task (or shield, or cleanup) runs as: the one
    /// tokio's task dumps and tokio-console know it by. Only with the
    /// `taskdump` feature under `--cfg tokio_unstable`.
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    pub fn tokio_task_id(&self) -> Option<tokio::task::Id> {
        self.tokio_task
    }

    /// One line: indented two spaces per level up to [`MAX_INDENT`]
    /// levels, and past that with its depth written out instead.
    pub(crate) fn fmt_line(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let kind = match self.kind {
            EntryKind::Scope => "scope",
            EntryKind::Task => "task",
            EntryKind::Shield => "shield",
            EntryKind::Cleanup => "cleanup",
            EntryKind::Supervisor => "supervisor",
        };
        write!(f, "{:indent$}", "", indent = depth.min(MAX_INDENT) * 2)?;
        if depth > MAX_INDENT {
            write!(f, "(depth {depth}) ")?;
        }
        f.write_str(kind)?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        write!(f, " at {} [", self.location)?;
        // The state's reason shows a bounded part of its chain (see
        // `CancelReason`'s `Display`): a line's length does not grow with
        // the depth of the tree.
        write!(f, "{}", self.state)?;
        if let Some(site) = self.waiting_at {
            write!(f, ", waiting at {site}")?;
        }
        // Millisecond precision: nanoseconds are noise in a tree dump.
        let age = Duration::from_millis(self.age.as_millis().try_into().unwrap_or(u64::MAX));
        writeln!(f, ", age {age:?}]")
    }
}

/// Prints `roots` and everything under them, one line per entry.
fn fmt_tree(roots: &[TreeEntry], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (depth, entry) in depth_first(roots) {
        entry.fmt_line(f, depth)?;
    }
    Ok(())
}

impl fmt::Display for TreeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_tree(std::slice::from_ref(self), f)
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.roots.is_empty() {
            return f.write_str("(no live tasks)\n");
        }
        fmt_tree(&self.roots, f)
    }
}

impl fmt::Debug for TreeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeEntry")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("location", &format_args!("{}", self.location))
            .field("state", &self.state)
            .field("age", &self.age)
            .field("children", &self.children.len())
            .finish()
    }
}

impl fmt::Debug for TaskTree {
    /// Every entry, depth first, each with its depth.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(depth_first(&self.roots)).finish()
    }
}

impl Clone for TreeEntry {
    fn clone(&self) -> Self {
        let mut flat: Vec<(TreeEntry, Option<usize>)> = Vec::new();
        // The index of each entry's parent in `flat`, depth first.
        let mut parents: Vec<usize> = Vec::new();
        for (depth, entry) in depth_first(std::slice::from_ref(self)) {
            parents.truncate(depth);
            flat.push((entry.shallow_copy(), parents.last().copied()));
            parents.push(flat.len() - 1);
        }
        assemble(flat)
            .pop()
            .unwrap_or_else(|| unreachable!("one root in, one root out"))
    }
}

impl Drop for TreeEntry {
    fn drop(&mut self) {
        // Children moved onto a list and dropped from there, rather than
        // each dropping its own children: no recursion, however deep.
        let mut rest = std::mem::take(&mut self.children);
        while let Some(mut entry) = rest.pop() {
            rest.append(&mut entry.children);
        }
    }
}
