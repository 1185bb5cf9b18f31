//! The live task tree: one [`Node`] per scope, task, shield and cleanup phase.
//!
//! Not public API. Every node knows its parent and holds its live children in
//! a registry. That one structure does four jobs:
//!
//! * **cancellation**: cancelling a node records its reason (the first one
//!   wins), wakes it, and walks its children, giving each the reason it
//!   inherits ([`CancelReason::for_child`]); shields are told to stop instead;
//! * **joining**: a node completes only once its registry is empty, so a scope
//!   (or a task holding an orphaned nested scope) waits for every descendant;
//! * **failure collection**: a failing child records its failure on its scope
//!   node, and the first failure cancels the scope;
//! * **introspection**: [`crate::tree()`] walks the same registries.
//!
//! Walking our own registry (which introspection needs anyway) instead of a
//! `CancellationToken` per task keeps a task to one allocation of bookkeeping.

mod guarded;
#[cfg(all(test, tethered_loom))]
mod loom_models;
pub(crate) mod sync;

use std::borrow::Cow;
use std::cell::Cell;
use std::panic::Location;
use std::task::Waker;

use slab::Slab;
use tokio::time::Instant;

pub(crate) use guarded::{Guarded, Settled};
use sync::{Arc, AtomicU16, AtomicU32, Mutex, Ordering, lock};

use crate::error::TaskFailure;
use crate::reason::{CancelKind, CancelReason};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A scope: `Scope::run` or a `#[scoped]` fn.
    Scope,
    /// A spawned child task.
    Task,
    /// A shielded child task: hard cancellation does not reach it.
    Shield,
    /// A scope's cleanup phase: shielded like a shield, child of its scope.
    Cleanup,
    /// A supervisor: a scope whose children's failures do not cancel it, and
    /// which shuts down in phases of its own. Cancellation and stop requests
    /// from above only *ask* it to stop; it then stops its children in its
    /// own order and cancels them when its grace period is over.
    Supervisor,
}

const CANCELLED: u16 = 1;
const STOPPING: u16 = 1 << 1;
const IN_CLEANUP: u16 = 1 << 2;
const DONE: u16 = 1 << 3;
const ORPHANED: u16 = 1 << 4;
/// The node's own future has ended (completed, failed, panicked or was
/// cancelled): cancelling it can no longer change anything.
const SETTLED: u16 = 1 << 5;
/// A child was registered under this node at least once. A leaf task (never
/// had one) skips waiting for children, and the lock that takes.
const HAD_CHILDREN: u16 = 1 << 6;
/// The node's own code has ended and it is waiting for its children.
const JOINING: u16 = 1 << 7;
/// The node takes no more children through [`Node::try_new`]: every child
/// ended after it started joining, or it is a supervisor shutting down.
/// Set and read under the node's lock.
const SEALED: u16 = 1 << 8;
/// The node's cancel reason came down from an ancestor (rather than being
/// raised on it), which decides how its children inherit it. Set and read
/// under the node's lock.
const INHERITED: u16 = 1 << 9;

/// Sentinel for "not registered anywhere yet".
const NO_SLOT: u32 = u32::MAX;

pub(crate) struct Node {
    kind: NodeKind,
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    /// When the node was created, as an offset from [`epoch`]: half the size
    /// of an `Instant`. (A node is one allocation per task, freed by whichever
    /// thread ends the task; every byte saved keeps it in a cheaper size class
    /// of the allocator.)
    started: i64,
    parent: Option<Arc<Node>>,
    /// This node's key in its parent's registry (or in [`roots`]).
    slot: AtomicU32,
    flags: AtomicU16,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Why this node was hard-cancelled; set once, first writer wins.
    reason: Option<CancelReason>,
    /// Why this node was asked to stop; set once, first writer wins.
    stop_reason: Option<CancelReason>,
    /// The future driving this node (the task wrapper or the scope future).
    waker: Option<Waker>,
    /// What most nodes never need, allocated on first use: a leaf task (the
    /// common case) stays one small allocation.
    family: Option<Box<Family>>,
}

#[derive(Default)]
struct Family {
    children: Slab<Arc<Node>>,
    /// Failures of this scope's children and cleanups, in order.
    failures: Vec<TaskFailure>,
    /// Futures waiting in `stop_requested()`.
    stop_wakers: Vec<Waker>,
    /// Woken whenever any child ends, not only the last: a supervisor's
    /// shutdown, which runs in a task of its own (so it cannot share
    /// `waker`) and waits for some of the children at a time.
    watcher: Option<Waker>,
}

impl Inner {
    fn family(&mut self) -> &mut Family {
        self.family.get_or_insert_with(Box::default)
    }

    fn has_children(&self) -> bool {
        self.family
            .as_ref()
            .is_some_and(|family| !family.children.is_empty())
    }

    fn children(&self) -> Vec<Arc<Node>> {
        self.family
            .as_ref()
            .map(|family| snapshot(&family.children))
            .unwrap_or_default()
    }

    fn take_stop_wakers(&mut self) -> Vec<Waker> {
        self.family
            .as_mut()
            .map(|family| std::mem::take(&mut family.stop_wakers))
            .unwrap_or_default()
    }
}

/// Scopes with no tethered node around them (roots of [`crate::tree()`]).
fn roots() -> &'static std::sync::Mutex<Slab<Arc<Node>>> {
    static ROOTS: std::sync::OnceLock<std::sync::Mutex<Slab<Arc<Node>>>> =
        std::sync::OnceLock::new();
    ROOTS.get_or_init(Default::default)
}

impl Node {
    /// Creates a node, born at `started`, and registers it under `parent`
    /// (or as a root). `started` is taken from the caller, which often has
    /// just read the clock for reasons of its own (a periodic tick).
    ///
    /// A node born under a cancelled or stopping parent inherits that state
    /// at once, so spawning into a cancelled scope yields a cancelled task
    /// that never runs.
    pub(crate) fn new(
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        match parent {
            None => {
                let node = Node::alloc(kind, name, location, started, None);
                let key = lock_std(roots()).insert(node.clone());
                node.slot.store(slot_of(key), Ordering::Relaxed);
                node
            }
            Some(parent) => Node::register(kind, name, location, started, &parent, false)
                .unwrap_or_else(|| unreachable!("registration only fails when asked to check")),
        }
    }

    /// Like [`Node::new`] under `parent`, but refuses (returns `None`) when
    /// the parent is closing (cancelled) or closed (sealed).
    pub(crate) fn try_new(
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: &Arc<Node>,
    ) -> Option<Arc<Node>> {
        Node::register(kind, name, location, started, parent, true)
    }

    fn alloc(
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        Arc::new(Node {
            kind,
            name,
            location,
            started: since_epoch(started),
            parent,
            slot: AtomicU32::new(NO_SLOT),
            flags: AtomicU16::new(0),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn register(
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: &Arc<Node>,
        refuse_when_closed: bool,
    ) -> Option<Arc<Node>> {
        let node = Node::alloc(kind, name, location, started, Some(parent.clone()));
        let (inherit_cancel, inherit_stop) = {
            let mut inner = lock(&parent.inner);
            if refuse_when_closed && (parent.has(SEALED) || inner.reason.is_some()) {
                return None;
            }
            let key = inner.family().children.insert(node.clone());
            node.slot.store(slot_of(key), Ordering::Relaxed);
            if !parent.has(HAD_CHILDREN) {
                parent.flags.fetch_or(HAD_CHILDREN, Ordering::Release);
            }
            let inherit = inner
                .reason
                .as_ref()
                .map(|reason| reason.for_child(parent.name.clone(), !parent.has(INHERITED)));
            (inherit, inner.stop_reason.clone())
        };
        // A cancellation walk takes a snapshot of the children, so a node
        // registered after the snapshot takes the parent's state itself;
        // first-writer-wins makes it harmless when both happen.
        match (inherit_cancel, kind) {
            (Some(reason), NodeKind::Task | NodeKind::Scope) => {
                node.cancel(reason, true);
            }
            _ => {
                if let Some(reason) = inherit_stop {
                    node.stop(reason);
                }
            }
        }
        Some(node)
    }

    pub(crate) fn kind(&self) -> NodeKind {
        self.kind
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn name_cow(&self) -> Option<Cow<'static, str>> {
        self.name.clone()
    }

    pub(crate) fn location(&self) -> &'static Location<'static> {
        self.location
    }

    pub(crate) fn started(&self) -> Instant {
        from_epoch(self.started)
    }

    pub(crate) fn parent(&self) -> Option<&Arc<Node>> {
        self.parent.as_ref()
    }

    fn has(&self, flag: u16) -> bool {
        self.flags.load(Ordering::Acquire) & flag != 0
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.has(CANCELLED)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.has(STOPPING)
    }

    pub(crate) fn is_in_cleanup(&self) -> bool {
        self.has(IN_CLEANUP)
    }

    pub(crate) fn is_orphaned(&self) -> bool {
        self.has(ORPHANED)
    }

    /// Whether the node's own code has ended (a settled task, a scope whose
    /// body returned) and it only waits for its children.
    pub(crate) fn is_joining(&self) -> bool {
        self.has(SETTLED | JOINING)
    }

    /// Marks the node's own future as ended; later cancellations are no-ops.
    pub(crate) fn set_settled(&self) {
        self.flags.fetch_or(SETTLED, Ordering::AcqRel);
    }

    pub(crate) fn set_in_cleanup(&self) {
        self.flags.fetch_or(IN_CLEANUP, Ordering::AcqRel);
    }

    pub(crate) fn set_orphaned(&self) {
        self.flags.fetch_or(ORPHANED, Ordering::AcqRel);
    }

    /// Why this node was hard-cancelled, if it was.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        lock(&self.inner).reason.clone()
    }

    /// Why this node was asked to stop, if it was.
    pub(crate) fn stop_reason(&self) -> Option<CancelReason> {
        lock(&self.inner).stop_reason.clone()
    }

    /// Hard-cancels this node and everything under it except shields (which
    /// are asked to stop). Returns `false`, changing nothing, when the node
    /// was already cancelled: the first reason wins.
    ///
    /// `inherited` cancellations (reaching a node because an ancestor was
    /// cancelled) are traced at debug level; the one that started the walk
    /// at info level, so "who cancelled what" is visible by default.
    pub(crate) fn cancel(&self, reason: CancelReason, inherited: bool) -> bool {
        if self.has(SETTLED) {
            // Its outcome is decided (a failed task, for one, is still
            // registered while its failure cancels its siblings).
            return false;
        }
        let (waker, stop_wakers, children) = {
            let mut inner = lock(&self.inner);
            if let Some(kept) = &inner.reason {
                tracing::debug!(
                    target: "tethered::cancel",
                    task = self.name(),
                    location = %self.location,
                    kept = %kept,
                    ignored = %reason,
                    "cancellation ignored: already cancelled",
                );
                return false;
            }
            if inherited {
                tracing::debug!(
                    target: "tethered::cancel",
                    task = self.name(),
                    location = %self.location,
                    reason = %reason,
                    "cancelled",
                );
            } else {
                tracing::info!(
                    target: "tethered::cancel",
                    task = self.name(),
                    location = %self.location,
                    reason = %reason,
                    "cancelled",
                );
            }
            inner.reason = Some(reason.clone());
            if inherited {
                self.flags.fetch_or(INHERITED, Ordering::AcqRel);
            }
            if inner.stop_reason.is_none() {
                inner.stop_reason = Some(reason.clone());
            }
            self.flags.fetch_or(CANCELLED | STOPPING, Ordering::AcqRel);
            (
                inner.waker.take(),
                inner.take_stop_wakers(),
                inner.children(),
            )
        };
        wake_all(waker, stop_wakers);
        if !children.is_empty() {
            let inherited = reason.for_child(self.name.clone(), !inherited);
            for child in children {
                match child.kind {
                    NodeKind::Task | NodeKind::Scope => child.cancel(inherited.clone(), true),
                    NodeKind::Shield | NodeKind::Cleanup | NodeKind::Supervisor => {
                        child.stop(inherited.clone())
                    }
                };
            }
        }
        true
    }

    /// Asks this node and everything under it (shields included) to stop.
    /// Returns `false` when it was already stopping.
    ///
    /// A supervisor is only told: it stops its children itself, in phases
    /// (see [`crate::Supervisor`]).
    pub(crate) fn stop(&self, reason: CancelReason) -> bool {
        let (stop_wakers, children) = {
            let mut inner = lock(&self.inner);
            if inner.stop_reason.is_some() {
                return false;
            }
            inner.stop_reason = Some(reason.clone());
            // A supervisor asked to stop has begun its shutdown: from this
            // moment, not from when its shutdown task first runs, it takes
            // no new children, so that none escapes the shutdown's report.
            let seal = if self.kind == NodeKind::Supervisor {
                SEALED
            } else {
                0
            };
            self.flags.fetch_or(STOPPING | seal, Ordering::AcqRel);
            (inner.take_stop_wakers(), inner.children())
        };
        tracing::debug!(
            target: "tethered::cancel",
            task = self.name(),
            location = %self.location,
            reason = %reason,
            "stop requested",
        );
        wake_all(None, stop_wakers);
        if self.kind != NodeKind::Supervisor {
            for child in children {
                child.stop(reason.clone());
            }
        }
        true
    }

    /// Refuses new children through [`Node::try_new`] from now on: a
    /// supervisor that started shutting down takes no new work.
    pub(crate) fn refuse_children(&self) {
        let _inner = lock(&self.inner);
        self.flags.fetch_or(SEALED, Ordering::AcqRel);
    }

    /// Whether this node has left its parent's registry.
    pub(crate) fn is_done(&self) -> bool {
        self.has(DONE)
    }

    /// Registers `waker` to be woken whenever one of this node's children
    /// ends (not only the last), and reports whether any child is left.
    pub(crate) fn poll_watch_children(&self, waker: &Waker) -> bool {
        let mut inner = lock(&self.inner);
        store_waker(&mut inner.family().watcher, waker);
        inner.has_children()
    }

    /// Wakes the future registered by [`Node::poll_watch_children`].
    pub(crate) fn wake_watcher(&self) {
        let watcher = lock(&self.inner)
            .family
            .as_mut()
            .and_then(|family| family.watcher.take());
        if let Some(watcher) = watcher {
            watcher.wake();
        }
    }

    /// A stable identity for this node while it is alive.
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Stores the waker of the future driving this node. Returns `true` when
    /// the node is already cancelled, in which case nothing is stored and the
    /// caller must act on the cancellation now: checking under the same lock
    /// that `cancel` takes means no wake-up can fall between the two.
    pub(crate) fn register_waker(&self, waker: &Waker) -> bool {
        let mut inner = lock(&self.inner);
        if inner.reason.is_some() {
            return true;
        }
        store_waker(&mut inner.waker, waker);
        false
    }

    /// Registers `waker` to be woken when this node is asked to stop. Returns
    /// the stop reason instead when it already was.
    pub(crate) fn poll_stop(&self, waker: &Waker) -> Option<CancelReason> {
        let mut inner = lock(&self.inner);
        if let Some(reason) = &inner.stop_reason {
            return Some(reason.clone());
        }
        let stop_wakers = &mut inner.family().stop_wakers;
        if !stop_wakers.iter().any(|w| w.will_wake(waker)) {
            stop_wakers.push(waker.clone());
        }
        None
    }

    /// Reports whether every child has ended, sealing the registry when so;
    /// when not, `waker` is woken by the last child to end. Children may
    /// still be added while the node waits (a child spawning a sibling), so
    /// the registry is sealed only once it is seen empty, under the lock.
    pub(crate) fn poll_children_done(&self, waker: &Waker) -> bool {
        let mut inner = lock(&self.inner);
        if !self.has(JOINING) {
            self.flags.fetch_or(JOINING, Ordering::AcqRel);
        }
        if !inner.has_children() {
            self.flags.fetch_or(SEALED, Ordering::AcqRel);
            return true;
        }
        store_waker(&mut inner.waker, waker);
        false
    }

    /// Whether the node refuses new children: cancelled, or sealed.
    pub(crate) fn is_closed(&self) -> bool {
        let inner = lock(&self.inner);
        self.has(SEALED) || inner.reason.is_some()
    }

    /// Live children, for introspection.
    pub(crate) fn children(&self) -> Vec<Arc<Node>> {
        lock(&self.inner).children()
    }

    /// How many children are alive, without copying the registry.
    pub(crate) fn child_count(&self) -> usize {
        lock(&self.inner)
            .family
            .as_ref()
            .map_or(0, |family| family.children.len())
    }

    /// Whether a child was ever registered under this node.
    pub(crate) fn had_children(&self) -> bool {
        self.has(HAD_CHILDREN)
    }

    /// Records a failure of one of this scope's children or cleanups. With
    /// `cancel`, the first failure cancels the scope with a
    /// [`SiblingFailed`](CancelKind::SiblingFailed) reason naming the failed
    /// child. A supervisor is never cancelled by its children's failures.
    pub(crate) fn record_failure(&self, failure: TaskFailure, cancel: bool) {
        let cancel = cancel && self.kind != NodeKind::Supervisor;
        let reason = cancel.then(|| {
            CancelReason::raised_by(
                CancelKind::SiblingFailed,
                failure.location(),
                failure.task().map(|name| Cow::Owned(name.to_owned())),
            )
            .with_message(failure.summary())
        });
        let first = {
            let mut inner = lock(&self.inner);
            let failures = &mut inner.family().failures;
            failures.push(failure);
            failures.len() == 1
        };
        if let (true, Some(reason)) = (first, reason) {
            self.cancel(reason, false);
        }
    }

    /// Takes the failures recorded so far.
    pub(crate) fn take_failures(&self) -> Vec<TaskFailure> {
        lock(&self.inner)
            .family
            .as_mut()
            .map(|family| std::mem::take(&mut family.failures))
            .unwrap_or_default()
    }

    /// The nearest scope at or above this node, where failures are recorded.
    pub(crate) fn enclosing_scope(node: &Arc<Node>) -> Option<Arc<Node>> {
        let mut node = Some(node);
        while let Some(current) = node {
            if matches!(current.kind, NodeKind::Scope | NodeKind::Supervisor) {
                return Some(current.clone());
            }
            node = current.parent.as_ref();
        }
        None
    }

    /// Removes this node from its parent's registry, waking the parent when
    /// it was the last child the parent was waiting for. Idempotent.
    pub(crate) fn finish(&self) {
        if self.flags.fetch_or(DONE, Ordering::AcqRel) & DONE != 0 {
            return;
        }
        let slot = self.slot.load(Ordering::Relaxed);
        match &self.parent {
            None => {
                if slot != NO_SLOT {
                    lock_std(roots()).try_remove(slot as usize);
                }
            }
            Some(parent) => {
                let (waker, watcher) = {
                    let mut inner = lock(&parent.inner);
                    if slot != NO_SLOT {
                        inner.family().children.try_remove(slot as usize);
                    }
                    let waker = if parent.has(JOINING) && !inner.has_children() {
                        inner.waker.take()
                    } else {
                        None
                    };
                    let watcher = inner
                        .family
                        .as_mut()
                        .and_then(|family| family.watcher.take());
                    (waker, watcher)
                };
                for waker in [waker, watcher].into_iter().flatten() {
                    waker.wake();
                }
            }
        }
    }
}

/// Finishes its node when dropped, however the future holding it ends, even
/// when the runtime drops that future before its first poll (at shutdown):
/// otherwise the node's parent would wait for it, and the tree show it,
/// forever.
pub(crate) struct FinishOnDrop(pub(crate) Arc<Node>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Waits until every child of `node` has ended.
pub(crate) async fn children_done(node: &Node) {
    std::future::poll_fn(|cx| {
        if node.poll_children_done(cx.waker()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Snapshot of the live root nodes.
pub(crate) fn root_nodes() -> Vec<Arc<Node>> {
    snapshot(&lock_std(roots()))
}

fn snapshot(children: &Slab<Arc<Node>>) -> Vec<Arc<Node>> {
    children.iter().map(|(_, child)| child.clone()).collect()
}

/// A registry key as stored in [`Node::slot`]. A registry holds live
/// children, each an allocation of its own: four billion of them do not fit
/// in memory, so the key always fits.
fn slot_of(key: usize) -> u32 {
    u32::try_from(key).unwrap_or_else(|_| unreachable!("over 2^32 live children under one node"))
}

/// The instant node ages are counted from, as a `std` instant: tokio's
/// paused clock moves its own instants, which convert to and from `std`'s.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// `instant` as nanoseconds after [`epoch`] (negative before it: a paused
/// clock may have been started earlier), saturating at ±292 years.
fn since_epoch(instant: Instant) -> i64 {
    let instant = instant.into_std();
    let epoch = epoch();
    match instant.checked_duration_since(epoch) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => -i64::try_from(epoch.duration_since(instant).as_nanos()).unwrap_or(i64::MAX),
    }
}

fn from_epoch(nanos: i64) -> Instant {
    let offset = std::time::Duration::from_nanos(nanos.unsigned_abs());
    let epoch = epoch();
    let instant = if nanos >= 0 {
        epoch.checked_add(offset)
    } else {
        epoch.checked_sub(offset)
    };
    Instant::from_std(instant.unwrap_or(epoch))
}

fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(current) if current.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

fn wake_all(waker: Option<Waker>, others: Vec<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
    for waker in others {
        waker.wake();
    }
}

fn lock_std<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("location", &format_args!("{}", self.location))
            .field("flags", &self.flags.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The node whose future is being polled on this thread: the task, the
    /// scope body, or the cleanup phase that user code runs in.
    static CURRENT: Cell<Option<Arc<Node>>> = const { Cell::new(None) };
}

/// The node being polled on this thread, if any.
pub(crate) fn current() -> Option<Arc<Node>> {
    CURRENT.with(|cell| {
        let node = cell.take();
        let copy = node.clone();
        cell.set(node);
        copy
    })
}

/// Runs `f` with `node` as the current node, moving the `Arc` in and out of
/// the thread-local so entering costs no reference-count traffic.
pub(crate) fn enter<R>(node: &mut Option<Arc<Node>>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|cell| cell.replace(node.take()));
    // `f` never unwinds: every caller wraps user code in `catch_unwind`.
    let result = f();
    *node = CURRENT.with(|cell| cell.replace(previous));
    result
}
