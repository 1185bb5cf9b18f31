//! The live task tree: one [`Node`] per scope, task, shield and cleanup phase.
//!
//! Not public API. Every node knows its parent and holds its live children in
//! a registry. That one structure does four jobs:
//!
//! * **cancellation**: cancelling a node records its reason (the first one
//!   wins), wakes it, and walks its children, giving each the reason it
//!   inherits ([`CancelReason::for_child`]); shields are told to stop instead;
//! * **joining**: a node completes only once every registered child has
//!   ended, so a scope (or a task holding an orphaned nested scope) waits for
//!   every descendant;
//! * **failure collection**: a failing child records its failure on its scope
//!   node, and the first failure cancels the scope;
//! * **introspection**: [`crate::tree()`] walks the same registries.
//!
//! Walking our own registry (which introspection needs anyway) instead of a
//! `CancellationToken` per task keeps a task to one allocation of bookkeeping.
//!
//! A child that ends while its parent runs does not take the parent's lock:
//! it counts its end in the parent's state word, and stays registered (and
//! ignored) until the parent's next registrations remove the ended children
//! in a batch. Spawning and ending happen on different workers more often
//! than not, and this keeps the parent's lock and registry on the spawning
//! one (see [`Node::finish`]). The removed nodes that nothing else holds are
//! then registered again as the parent's next children (see [`SPARES`]): a
//! steady stream of short children allocates no nodes. A detached task's
//! node also holds on to the task's memory until then (see
//! [`Node::settle_task`]), so that what the spawning worker allocated, the
//! spawning worker frees: freeing it on another worker contends for the
//! allocator's lock.

mod guarded;
mod local;
#[cfg(all(test, tethered_loom))]
mod loom_models;
mod registry;
pub(crate) mod sync;

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::Location;
// Not part of the node's synchronisation (nothing is decided by it), so not
// one of loom's: a plain atomic under the models too.
use std::sync::atomic::AtomicU32;
use std::task::Waker;

use tokio::time::Instant;

pub(crate) use guarded::{Guarded, Settled};
use registry::Registry;
use sync::{Arc, AtomicU64, Mutex, Ordering, lock};

use crate::error::TaskFailure;
use crate::reason::{CancelKind, CancelReason};
use crate::scope_report::{Account, ChildAccount, Ending, TaskEnd};

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

const CANCELLED: u64 = 1;
const STOPPING: u64 = 1 << 1;
const IN_CLEANUP: u64 = 1 << 2;
const DONE: u64 = 1 << 3;
const ORPHANED: u64 = 1 << 4;
/// The node's own future has ended (completed, failed, panicked or was
/// cancelled): cancelling it can no longer change anything.
const SETTLED: u64 = 1 << 5;
/// A child was registered under this node at least once. A leaf task (never
/// had one) skips waiting for children, and the lock that takes.
const HAD_CHILDREN: u64 = 1 << 6;
/// The node's own code has ended and it is waiting for its children.
const JOINING: u64 = 1 << 7;
/// The node takes no more children through [`Node::try_new`]: every child
/// ended after it started joining, or it is a supervisor shutting down.
/// Set and read under the node's lock.
const SEALED: u64 = 1 << 8;
/// The node's cancel reason came down from an ancestor (rather than being
/// raised on it), which decides how its children inherit it. Set and read
/// under the node's lock.
const INHERITED: u64 = 1 << 9;
/// A future waits in [`Node::poll_watch_children`] for any child's end: an
/// ending child takes the node's lock to wake it. Set under the lock.
const WATCHED: u64 = 1 << 10;
/// The task's handle was dropped: nothing but this node will free the
/// task's memory on the worker that spawned it (see [`Node::settle_task`]).
const DETACHED: u64 = 1 << 11;
/// A scope that recorded a failure (see [`Node::awaits_failed_scope`]), or
/// a task that failed (its end is in its scope's account with its failure).
/// Bit 15: the kind takes bits 12 to 14.
const FAILED: u64 = 1 << 15;
/// A local child's node (see [`crate::LocalScope`]): it is its future's
/// waker, and waking it queues the child for its scope to poll (see
/// `local.rs` in this module). Bit 44: the registry key takes bits 16 to 43.
const LOCAL: u64 = 1 << 44;
/// A local child that is queued to be polled (or new, and about to be):
/// waking it again queues nothing more.
const QUEUED: u64 = 1 << 45;
/// A task whose future completed (rather than being cancelled), for its
/// scope's account.
const COMPLETED: u64 = 1 << 46;
/// A scope that keeps an account of every child's end, the completed ones
/// too (see [`crate::ScopeReport`]): its children end under its lock.
const REPORTING: u64 = 1 << 47;

/// How many ended children a registry keeps, at least, before the parent's
/// next registration removes them (see [`Node::finish`]).
/// (1 in the loom models, so that they explore the sweeps.)
const SWEEP_AFTER: i32 = if cfg!(tethered_loom) { 1 } else { 32 };
/// How many before an ending child removes them itself, and again each time
/// the count doubles (see [`sweep_due`]): a parent that registers no more
/// children still has its ended ones removed.
const ENDED_LIMIT: i32 = 64;
/// How many ended children a registry keeps at most, however many live ones
/// it holds: the count stays far within its `i16` (see `KIND_SHIFT`).
const ENDED_MAX: i32 = 8192;

/// How many ended children a node keeps to register again (see
/// [`Node::register`]), or as many as it has live children when that is
/// more: about as many as will end before the next sweep.
const SPARES: usize = 64;

/// Whether a registry of `registered` children, `ended` of which have ended,
/// is worth a sweep. A sweep reads every registered child's flags: sweeping
/// once a quarter of the registry has ended keeps that to four reads per
/// removed child, however many live children a parent holds (a spawning
/// loop can run far ahead of its children). Past [`ENDED_MAX`] the registry
/// is swept anyway.
fn sweep_due(ended: i32, registered: usize) -> bool {
    ended >= SWEEP_AFTER
        && (ended >= ENDED_MAX || usize::try_from(ended).is_ok_and(|ended| ended * 4 >= registered))
}

// A node's `state` packs, in one word that every task reads and writes:
// the flags above (bits 0 to 11, 15, 46 and 47), the node's kind (12 to
// 14), its key in its parent's registry plus one (16 to 43; 0 before it is
// registered) and its
// count of ended children not yet removed from its registry (48 to 63, a
// wrapping `i16`: it stays within a few thousand of 0, see `ENDED_MAX`).
// One word keeps the node at 104 bytes, in the allocator's cheapest size
// class, and lets an ending child count itself and read its parent's flags
// in one read-modify-write.
const KIND_SHIFT: u32 = 12;
const SLOT_SHIFT: u32 = 16;
/// The registry key's 28 bits, once shifted down.
const SLOT_MASK: u32 = (1 << 28) - 1;
const ENDED_SHIFT: u32 = 48;
const ENDED_ONE: u64 = 1 << ENDED_SHIFT;

/// Sentinel for "not registered anywhere yet".
const NO_SLOT: u32 = u32::MAX;

impl NodeKind {
    fn bits(self) -> u64 {
        let bits = match self {
            NodeKind::Scope => 0,
            NodeKind::Task => 1,
            NodeKind::Shield => 2,
            NodeKind::Cleanup => 3,
            NodeKind::Supervisor => 4,
        };
        bits << KIND_SHIFT
    }

    fn from_state(state: u64) -> NodeKind {
        match (state >> KIND_SHIFT) & 0b111 {
            0 => NodeKind::Scope,
            1 => NodeKind::Task,
            2 => NodeKind::Shield,
            3 => NodeKind::Cleanup,
            _ => NodeKind::Supervisor,
        }
    }
}

/// The registry key in `state`, or [`NO_SLOT`].
fn slot_in(state: u64) -> u32 {
    (((state >> SLOT_SHIFT) as u32) & SLOT_MASK).wrapping_sub(1)
}

/// The ended-children count in `state`.
fn ended_in(state: u64) -> i32 {
    i32::from((state >> ENDED_SHIFT) as u16 as i16)
}

pub(crate) struct Node {
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    /// When the node was created, as an offset from [`epoch`]: half the size
    /// of an `Instant`. (A node is one allocation per task, freed by whichever
    /// thread ends the task; every byte saved keeps it in a cheaper size class
    /// of the allocator.)
    started: i64,
    parent: Option<Arc<Node>>,
    /// The flags, the kind, this node's key in its parent's registry (or in
    /// [`roots`]), and how many of its registered children have ended since
    /// they were last removed from the registry (see [`Node::finish`]):
    /// signed, as a removal may come before the ending child's count. See
    /// `KIND_SHIFT` for the layout.
    state: AtomicU64,
    /// The number of the `.await` the node's code was last polled at (see
    /// [`crate::wait`]); 0 for none. In the room the node has left.
    waiting: AtomicU32,
    /// The thread the node was made on, which for a task is the thread that
    /// spawned it (see [`this_thread`]). In the 4 bytes beside `waiting`
    /// that the node had to spare.
    born_on: u32,
    /// The tokio task a task node runs as, to find it in tokio's task
    /// dumps.
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    tokio_task: std::sync::OnceLock<tokio::task::Id>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The node's first reason, first writer wins: why it was asked to
    /// stop, while it is only stopping; why it was hard-cancelled, once it
    /// is (see [`Inner::cancel_reason`] and [`Inner::stop_reason`]). One
    /// slot for both keeps the node in its size class: a node cancelled
    /// after a stop keeps the stop's reason in its family.
    first: Option<CancelReason>,
    /// The future driving this node (the task wrapper or the scope future).
    waker: Option<Waker>,
    /// What most nodes never need, allocated on first use: a leaf task (the
    /// common case) stays one small allocation.
    family: Option<Box<Family>>,
}

#[derive(Default)]
struct Family {
    children: Registry<Arc<Node>>,
    /// Ended children a sweep removed, kept for the next registrations to
    /// use again (see [`Node::register`]). Emptied when the node finishes:
    /// each holds this node as its parent.
    spares: VecDeque<Arc<Node>>,
    /// Failures of this scope's children and cleanups, in order.
    failures: Vec<TaskFailure>,
    /// Futures waiting in `stop_requested()`.
    stop_wakers: Vec<Waker>,
    /// Woken whenever any child ends, not only the last: a supervisor's
    /// shutdown, which runs in a task of its own (so it cannot share
    /// `waker`) and waits for some of the children at a time.
    watcher: Option<Waker>,
    /// The scope's (or supervisor's) `tracing` span, when a subscriber
    /// wants it: its children's spans are its children, whichever task
    /// spawns them.
    span: Option<tracing::Span>,
    /// A scope's account of its children's ends (see [`ScopeReport`]).
    ///
    /// [`ScopeReport`]: crate::ScopeReport
    account: Account,
    /// Why the node was asked to stop, when it was cancelled after that
    /// (otherwise the one reason is in [`Inner::first`]).
    stop_reason: Option<CancelReason>,
    /// The local children woken or started since the scope last polled
    /// them, by key, in the order they were (see `local.rs` in this
    /// module).
    woken: Vec<u32>,
    /// The waker of the task polling this node's local children, which a
    /// local child's wake takes.
    local_waker: Option<Waker>,
}

impl Inner {
    fn family(&mut self) -> &mut Family {
        self.family.get_or_insert_with(Box::default)
    }

    /// Why the node was hard-cancelled, if it was; `state` is the node's,
    /// read under its lock (its flags change under it).
    fn cancel_reason(&self, state: u64) -> Option<&CancelReason> {
        self.first.as_ref().filter(|_| state & CANCELLED != 0)
    }

    /// Why the node was asked to stop (a cancellation asks too), if it was.
    fn stop_reason(&self, state: u64) -> Option<&CancelReason> {
        let apart = self
            .family
            .as_ref()
            .and_then(|family| family.stop_reason.as_ref());
        apart.or_else(|| {
            self.first
                .as_ref()
                .filter(|_| state & (STOPPING | CANCELLED) != 0)
        })
    }

    /// How many registered children have not ended, given the node's
    /// `ended` count. Never less than the truth: a child that has ended but
    /// not yet counted it (or was removed before counting it) still counts
    /// as live, so this is never 0 while a child can still wake the node.
    fn live_children(&self, ended: i32) -> usize {
        let registered = self
            .family
            .as_ref()
            .map_or(0, |family| family.children.len());
        let registered = i64::try_from(registered).unwrap_or(i64::MAX);
        usize::try_from(registered - i64::from(ended)).unwrap_or(0)
    }

    /// The registered children, for a cancellation or stop walk: ended
    /// ones included (reaching them does nothing), as telling them apart
    /// would read every child's flags.
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
fn roots() -> &'static std::sync::Mutex<Registry<Arc<Node>>> {
    static ROOTS: std::sync::OnceLock<std::sync::Mutex<Registry<Arc<Node>>>> =
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
                let node = Node::alloc(kind.bits(), name, location, started, None);
                let key = lock_std(roots()).insert(node.clone());
                node.state.fetch_or(slot_bits(key), Ordering::Relaxed);
                node
            }
            Some(parent) => Node::register(kind, 0, name, location, started, &parent, false)
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
        Node::register(kind, 0, name, location, started, parent, true)
    }

    /// A new node whose `state` word starts as given (its kind, and its
    /// registry key once known).
    fn alloc(
        state: u64,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        Arc::new(Node {
            name,
            location,
            started: since_epoch(started),
            parent,
            state: AtomicU64::new(state),
            waiting: AtomicU32::new(0),
            born_on: this_thread(),
            #[cfg(all(tokio_unstable, feature = "taskdump"))]
            tokio_task: std::sync::OnceLock::new(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Lets go of what an ended child, which nothing else holds any more,
    /// still holds: its name, reasons and wakers (its task's among them,
    /// see [`Node::settle_task`]), freed here, on the parent's worker.
    fn retire(&mut self) {
        self.name = None;
        self.inner = Mutex::new(Inner::default());
    }

    /// Makes an ended child, which nothing else holds any more, new again
    /// as another child of the same parent: nothing of the old one stays.
    fn renew(
        &mut self,
        state: u64,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
    ) {
        // A spare still held when it was swept was not retired then.
        self.retire();
        self.name = name;
        self.location = location;
        self.started = since_epoch(started);
        self.state = AtomicU64::new(state);
        self.waiting = AtomicU32::new(0);
        self.born_on = this_thread();
    }

    /// Registers a new node of `kind` under `parent`, its state word
    /// starting with `flags` too.
    fn register(
        kind: NodeKind,
        flags: u64,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: &Arc<Node>,
        refuse_when_closed: bool,
    ) -> Option<Arc<Node>> {
        let (node, inherit_cancel, inherit_stop) = {
            let mut inner = lock(&parent.inner);
            if refuse_when_closed && parent.has(SEALED | CANCELLED) {
                return None;
            }
            let family = inner.family();
            if sweep_due(
                ended_in(parent.state.load(Ordering::Relaxed)),
                family.children.len(),
            ) {
                parent.sweep(family);
            }
            let key = family.children.next_key();
            // The node is new to everyone: its key goes in with its kind.
            let state = kind.bits() | flags | slot_bits(key);
            // A spare if one is free, a new node otherwise.
            let node = loop {
                let Some(mut spare) = family.spares.pop_front() else {
                    break Node::alloc(state, name, location, started, Some(parent.clone()));
                };
                if let Some(reused) = Arc::get_mut(&mut spare) {
                    reused.renew(state, name, location, started);
                    break spare;
                }
                // Still held (by a handle, or by its task finishing on
                // another worker): let it go.
            };
            family.children.insert(node.clone());
            if flags & LOCAL != 0 {
                // Queued as it starts (see `Node::new_local`).
                family.woken.push(slot_of(key));
            }
            if !parent.has(HAD_CHILDREN) {
                parent.state.fetch_or(HAD_CHILDREN, Ordering::Release);
            }
            let state = parent.state.load(Ordering::Acquire);
            let inherit = inner
                .cancel_reason(state)
                .map(|reason| reason.for_child(parent.name.clone(), state & INHERITED == 0));
            (node, inherit, inner.stop_reason(state).cloned())
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
        NodeKind::from_state(self.state.load(Ordering::Relaxed))
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

    /// Whether the node was made on another thread than this one.
    pub(crate) fn born_elsewhere(&self) -> bool {
        self.born_on != this_thread()
    }

    pub(crate) fn parent(&self) -> Option<&Arc<Node>> {
        self.parent.as_ref()
    }

    fn has(&self, flag: u64) -> bool {
        self.state.load(Ordering::Acquire) & flag != 0
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

    /// Notes that the task's handle was dropped (see [`DETACHED`]); only
    /// read while its future runs.
    pub(crate) fn detach(&self) {
        if self.state.load(Ordering::Relaxed) & SETTLED == 0 {
            self.state.fetch_or(DETACHED, Ordering::Relaxed);
        }
    }

    /// Whether the task's handle was dropped (see [`DETACHED`]).
    pub(crate) fn is_detached(&self) -> bool {
        self.state.load(Ordering::Relaxed) & DETACHED != 0
    }

    /// Whether the node's own future has ended.
    pub(crate) fn is_settled(&self) -> bool {
        self.has(SETTLED)
    }

    /// Marks the node's own future as ended; later cancellations are no-ops.
    pub(crate) fn set_settled(&self) {
        self.state.fetch_or(SETTLED, Ordering::AcqRel);
    }

    /// Marks a task's future as ended, and keeps `waker`, its task's, for a
    /// task that ended on another worker than the one that spawned it, with
    /// nobody holding its handle. The tokio task's memory then goes back to
    /// the allocator when this node is released: when its parent sweeps it,
    /// on the spawning worker (see [`Node::finish`]), rather than at once on
    /// the worker that ran it. Freed there, it would take the spawning
    /// worker's allocator lock, which that worker takes for every new task:
    /// a stream of short detached tasks kept two workers contending for it.
    pub(crate) fn settle_task(&self, waker: &Waker) {
        let mut inner = lock(&self.inner);
        self.set_settled();
        store_waker(&mut inner.waker, waker);
    }

    pub(crate) fn set_in_cleanup(&self) {
        self.state.fetch_or(IN_CLEANUP, Ordering::AcqRel);
    }

    pub(crate) fn set_orphaned(&self) {
        self.state.fetch_or(ORPHANED, Ordering::AcqRel);
    }

    /// Why this node was hard-cancelled, if it was.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        let inner = lock(&self.inner);
        inner
            .cancel_reason(self.state.load(Ordering::Acquire))
            .cloned()
    }

    /// Why this node was asked to stop, if it was.
    pub(crate) fn stop_reason(&self) -> Option<CancelReason> {
        let inner = lock(&self.inner);
        inner
            .stop_reason(self.state.load(Ordering::Acquire))
            .cloned()
    }

    /// Hard-cancels this node and everything under it except shields (which
    /// are asked to stop). Returns `false`, changing nothing, when the node
    /// was already cancelled: the first reason wins.
    ///
    /// `inherited` cancellations (reaching a node because an ancestor was
    /// cancelled) are traced at debug level; the one that started the walk
    /// at info level, so "who cancelled what" is visible by default.
    ///
    /// The walk keeps its own stack, depth first in registry order: a tree
    /// can be deeper than any thread's stack (each level of task → scope
    /// nesting runs in a task of its own).
    pub(crate) fn cancel(&self, reason: CancelReason, inherited: bool) -> bool {
        let Some(children) = self.cancel_one(&reason, inherited) else {
            return false;
        };
        let mut walk = Vec::new();
        push_children(&mut walk, children, || {
            reason.for_child(self.name.clone(), !inherited)
        });
        while let Some((child, reason)) = walk.pop() {
            match child.kind() {
                NodeKind::Task | NodeKind::Scope => {
                    if let Some(children) = child.cancel_one(&reason, true) {
                        push_children(&mut walk, children, || {
                            reason.for_child(child.name.clone(), false)
                        });
                    }
                }
                NodeKind::Shield | NodeKind::Cleanup | NodeKind::Supervisor => {
                    child.stop(reason);
                }
            }
        }
        true
    }

    /// Hard-cancels this node alone, not its children: a supervisor's body
    /// (which runs as the supervisor's node) when the supervisor cancels
    /// its children itself, one at a time.
    pub(crate) fn cancel_alone(&self, reason: CancelReason) -> bool {
        self.cancel_one(&reason, false).is_some()
    }

    /// Cancels this node alone, and returns its children for the walk to
    /// go on with; `None` when it was cancelled (or ended) already.
    fn cancel_one(&self, reason: &CancelReason, inherited: bool) -> Option<Vec<Arc<Node>>> {
        if self.has(SETTLED | DONE) {
            // Its outcome is decided (a failed task, for one, is still
            // registered while its failure cancels its siblings), or it has
            // ended and waits in its parent's registry to be removed.
            return None;
        }
        let (waker, stop_wakers, children, local) = {
            let mut inner = lock(&self.inner);
            let state = self.state.load(Ordering::Acquire);
            if let Some(kept) = inner.cancel_reason(state) {
                tracing::debug!(
                    target: "tethered::cancel",
                    task = self.name(),
                    location = %self.location,
                    kept = %kept,
                    ignored = %reason,
                    "cancellation ignored: already cancelled",
                );
                return None;
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
            // Stopped first: the stop's reason moves aside (rare: a stop
            // that did not end the node in time), the slot takes this one.
            let stopped = inner.first.replace(reason.clone());
            if state & STOPPING != 0 {
                inner.family().stop_reason = stopped;
            }
            if inherited {
                self.state.fetch_or(INHERITED, Ordering::AcqRel);
            }
            self.state.fetch_or(CANCELLED | STOPPING, Ordering::AcqRel);
            (
                inner.waker.take(),
                inner.take_stop_wakers(),
                inner.children(),
                state & LOCAL != 0,
            )
        };
        wake_all(waker, stop_wakers);
        if local {
            self.wake_local();
        }
        Some(children)
    }

    /// Asks this node and everything under it (shields included) to stop.
    /// Returns `false` when it was already stopping.
    ///
    /// A supervisor is only told: it stops its children itself, in phases
    /// (see [`crate::Supervisor`]). Walked with a stack of its own, as
    /// [`Node::cancel`] is.
    pub(crate) fn stop(&self, reason: CancelReason) -> bool {
        let Some(children) = self.stop_one(&reason) else {
            return false;
        };
        let mut walk = Vec::new();
        push_children(&mut walk, children, || reason.clone());
        while let Some((child, reason)) = walk.pop() {
            if let Some(children) = child.stop_one(&reason) {
                push_children(&mut walk, children, || reason.clone());
            }
        }
        true
    }

    /// Asks this node alone to stop, and returns the children the stop
    /// goes on to (none for a supervisor); `None` when it was stopping (or
    /// ended) already.
    fn stop_one(&self, reason: &CancelReason) -> Option<Vec<Arc<Node>>> {
        if self.has(DONE) {
            // Ended, and waiting in its parent's registry to be removed.
            return None;
        }
        let supervisor = self.kind() == NodeKind::Supervisor;
        let (stop_wakers, children) = {
            let mut inner = lock(&self.inner);
            if self.has(STOPPING) {
                return None;
            }
            inner.first = Some(reason.clone());
            // A supervisor asked to stop has begun its shutdown: from this
            // moment, not from when its shutdown task first runs, it takes
            // no new children, so that none escapes the shutdown's report.
            let seal = if supervisor { SEALED } else { 0 };
            self.state.fetch_or(STOPPING | seal, Ordering::AcqRel);
            let children = if supervisor {
                Vec::new()
            } else {
                inner.children()
            };
            (inner.take_stop_wakers(), children)
        };
        tracing::debug!(
            target: "tethered::cancel",
            task = self.name(),
            location = %self.location,
            reason = %reason,
            "stop requested",
        );
        wake_all(None, stop_wakers);
        Some(children)
    }

    /// Refuses new children through [`Node::try_new`] from now on: a
    /// supervisor that started shutting down takes no new work.
    pub(crate) fn refuse_children(&self) {
        let _inner = lock(&self.inner);
        self.state.fetch_or(SEALED, Ordering::AcqRel);
    }

    /// Whether this node has left its parent's registry.
    pub(crate) fn is_done(&self) -> bool {
        self.has(DONE)
    }

    /// Whether the code this node runs is awaiting a scope that has failed
    /// and is still unwinding (its children being cancelled, its cleanups
    /// running): a scope nested inline in it, through scopes only, not
    /// orphaned. A cancellation of this node then waits, so that the
    /// failure reaches the code awaiting the scope, which can pass it on,
    /// rather than being lost with it (see [`Guarded`]).
    ///
    /// Only asked of a node already cancelled: the walk is not on any
    /// fast path.
    pub(crate) fn awaits_failed_scope(&self) -> bool {
        let mut walk = lock(&self.inner).children();
        while let Some(child) = walk.pop() {
            let state = child.state.load(Ordering::Acquire);
            if NodeKind::from_state(state) != NodeKind::Scope || state & (DONE | ORPHANED) != 0 {
                continue;
            }
            if state & FAILED != 0 {
                return true;
            }
            walk.extend(lock(&child.inner).children());
        }
        false
    }

    /// The `.await` this node's code was last polled at, if it was polled
    /// at one that tethered's macros recorded.
    pub(crate) fn waiting_at(&self) -> Option<&'static crate::wait::WaitSite> {
        crate::wait::WaitSite::numbered(self.waiting.load(Ordering::Relaxed))
    }

    /// Records the tokio task this task node runs as.
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    pub(crate) fn set_tokio_task(&self, id: tokio::task::Id) {
        let _ = self.tokio_task.set(id);
    }

    /// The tokio task this task node runs as.
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    pub(crate) fn tokio_task(&self) -> Option<tokio::task::Id> {
        self.tokio_task.get().copied()
    }

    /// Has this scope keep an account of every child's end, the completed
    /// ones too. Set before its first child.
    pub(crate) fn keep_report(&self) {
        self.state.fetch_or(REPORTING, Ordering::AcqRel);
    }

    pub(crate) fn keeps_report(&self) -> bool {
        self.has(REPORTING)
    }

    /// Marks a task whose future completed (see [`COMPLETED`]).
    pub(crate) fn set_completed(&self) {
        self.state.fetch_or(COMPLETED, Ordering::AcqRel);
    }

    /// Records the end of `child`, a task of this scope that failed.
    pub(crate) fn account_failed(&self, child: &Node, failure: TaskFailure) {
        child.state.fetch_or(FAILED, Ordering::AcqRel);
        lock(&self.inner)
            .family()
            .account
            .record(Ending::Failed, || {
                child.account(TaskEnd::Failed(failure), self)
            });
    }

    /// What this scope's account says of its children, taken.
    pub(crate) fn take_account(&self) -> Account {
        lock(&self.inner)
            .family
            .as_mut()
            .map(|family| std::mem::take(&mut family.account))
            .unwrap_or_default()
    }

    /// This task's line in `scope`'s account.
    fn account(&self, end: TaskEnd, scope: &Node) -> ChildAccount {
        let started = self.started();
        ChildAccount::new(
            self.name.clone(),
            self.location,
            self.kind() == NodeKind::Shield,
            started.saturating_duration_since(scope.started()),
            Instant::now().saturating_duration_since(started),
            end,
        )
    }

    /// Whether `parent`'s account takes this node's end, and how it ended:
    /// the tasks and shields of a scope that cancelled ones always, the
    /// completed ones when it keeps a report; a failed one is accounted for
    /// with its failure (see [`Node::account_failed`]).
    fn accounted_end(&self, parent: &Node, state: u64) -> Option<Ending> {
        let child = matches!(
            NodeKind::from_state(state),
            NodeKind::Task | NodeKind::Shield
        );
        if !child || parent.kind() != NodeKind::Scope || state & FAILED != 0 {
            return None;
        }
        if state & COMPLETED != 0 {
            return parent.has(REPORTING).then_some(Ending::Completed);
        }
        (state & CANCELLED != 0).then_some(Ending::Cancelled)
    }

    /// The line of `scope`'s account for this task, which ended as `end`.
    fn account_as(&self, end: Ending, scope: &Node) -> ChildAccount {
        let end = match (end, self.reason()) {
            (Ending::Cancelled, Some(reason)) => TaskEnd::Cancelled(reason),
            _ => TaskEnd::Completed,
        };
        self.account(end, scope)
    }

    /// Keeps the `tracing` span of this scope or supervisor, for its
    /// children's spans to hang from.
    pub(crate) fn set_span(&self, span: tracing::Span) {
        lock(&self.inner).family().span = Some(span);
    }

    /// The span of this node or of its nearest ancestor that has one.
    pub(crate) fn span(&self) -> Option<tracing::Span> {
        let mut node = self;
        loop {
            let span = lock(&node.inner)
                .family
                .as_ref()
                .and_then(|family| family.span.clone());
            if span.is_some() {
                return span;
            }
            node = node.parent.as_deref()?;
        }
    }

    /// Registers `waker` to be woken whenever one of this node's children
    /// ends (not only the last), and reports whether any child is left.
    pub(crate) fn poll_watch_children(&self, waker: &Waker) -> bool {
        let mut inner = lock(&self.inner);
        store_waker(&mut inner.family().watcher, waker);
        // The flag set and the count read in one step: an ending child
        // counts itself and reads the flags in one step too, so one of the
        // two sees the other.
        let state = self.state.fetch_or(WATCHED, Ordering::SeqCst);
        inner.live_children(ended_in(state)) > 0
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
    ///
    /// A local child's node keeps no waker: it is its future's waker, and
    /// a cancellation wakes it as such (see [`Node::wake_local`]).
    pub(crate) fn register_waker(&self, waker: &Waker) -> bool {
        let mut inner = lock(&self.inner);
        let state = self.state.load(Ordering::Acquire);
        if state & CANCELLED != 0 {
            return true;
        }
        if state & LOCAL == 0 {
            store_waker(&mut inner.waker, waker);
        }
        false
    }

    /// Registers `waker` to be woken when this node is asked to stop. Returns
    /// the stop reason instead when it already was.
    pub(crate) fn poll_stop(&self, waker: &Waker) -> Option<CancelReason> {
        let mut inner = lock(&self.inner);
        if let Some(reason) = inner.stop_reason(self.state.load(Ordering::Acquire)) {
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
        // The flag set and the count read in one step, as in
        // `poll_watch_children`.
        let state = self.state.fetch_or(JOINING, Ordering::SeqCst);
        if inner.live_children(ended_in(state)) == 0 {
            self.state.fetch_or(SEALED, Ordering::AcqRel);
            // Every child has ended and counted it: let them go now.
            if let Some(family) = inner.family.as_mut() {
                self.sweep(family);
            }
            return true;
        }
        store_waker(&mut inner.waker, waker);
        false
    }

    /// Whether the node refuses new children: cancelled, or sealed.
    pub(crate) fn is_closed(&self) -> bool {
        let _inner = lock(&self.inner);
        self.has(SEALED | CANCELLED)
    }

    /// Live children, for introspection: those that have not ended.
    pub(crate) fn children(&self) -> Vec<Arc<Node>> {
        let mut children = lock(&self.inner).children();
        children.retain(|child| !child.is_done());
        children
    }

    /// How many children are alive, without copying the registry.
    pub(crate) fn child_count(&self) -> usize {
        lock(&self.inner).live_children(ended_in(self.state.load(Ordering::Acquire)))
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
        let cancel = cancel && self.kind() != NodeKind::Supervisor;
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
        if first && self.kind() == NodeKind::Scope {
            self.state.fetch_or(FAILED, Ordering::AcqRel);
        }
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
            if matches!(current.kind(), NodeKind::Scope | NodeKind::Supervisor) {
                return Some(current.clone());
            }
            node = current.parent.as_ref();
        }
        None
    }

    /// Ends this node: from now on its parent does not count it, and the
    /// parent is woken when it was the last child the parent waited for.
    /// Idempotent.
    ///
    /// While the parent runs, the node is not removed from its parent's
    /// registry here but, in batches (see [`sweep_due`]), by the parent's
    /// next registrations, by a later ending child (from [`ENDED_LIMIT`]
    /// ended ones) or when the parent finishes joining; a closing
    /// parent's children leave it themselves. A child usually ends on another
    /// worker than the one that spawned it: ending this way touches only the
    /// parent's `ended` count, not the parent's lock and registry, which the
    /// spawning worker would then have to take back. The removed nodes are
    /// also dropped on the spawning worker, which allocated them.
    pub(crate) fn finish(&self) {
        // `SeqCst`, as the parent's read of it in `sweep`: see below.
        let state = self.state.fetch_or(DONE, Ordering::SeqCst);
        if state & DONE != 0 {
            return;
        }
        if state & LOCAL != 0 {
            self.release_own_wakers();
        }
        if self.has(HAD_CHILDREN) {
            // Ended children still registered hold this node as their
            // parent: let them go, or the two would keep each other alive.
            let mut inner = lock(&self.inner);
            if let Some(family) = inner.family.as_mut() {
                self.sweep(family);
            }
        }
        let slot = slot_in(self.state.load(Ordering::Relaxed));
        match &self.parent {
            None => {
                if slot != NO_SLOT {
                    lock_std(roots()).remove(slot as usize);
                }
            }
            Some(parent) => {
                // While the parent runs, the end is only counted. Counted,
                // then the parent's flags read: a parent setting `JOINING`
                // or `WATCHED` sets it, then reads the count (all `SeqCst`),
                // so either it sees this end or this sees its flag. Likewise
                // a parent that has finished sets `DONE`, then sweeps
                // reading its children's `DONE`: either it removed this
                // node, or this sees its `DONE`.
                //
                // A parent that is closing (joining, watched, finished or
                // cancelled: about to join many children ending at once) is
                // seen first, and then this node leaves its registry under
                // its lock, on whichever worker it ends, uncounted.
                //
                // A child whose end goes in its scope's account (cancelled,
                // or any, in a scope that keeps a report) takes the lock
                // too, to record it.
                let closing = JOINING | WATCHED | DONE | CANCELLED | REPORTING;
                let mut counted = false;
                let accounted = self.state.load(Ordering::Acquire) & CANCELLED != 0;
                if !accounted && parent.state.load(Ordering::SeqCst) & closing == 0 {
                    // Counts this end and reads the flags in one step.
                    let before = parent.state.fetch_add(ENDED_ONE, Ordering::SeqCst);
                    counted = true;
                    if before & closing == 0 {
                        // Checked at 64, 128, 256... (then every
                        // `ENDED_MAX`), not at every end: the lock is
                        // the spawning worker's.
                        let ended = ended_in(before) + 1;
                        if ended >= ENDED_LIMIT
                            && (ended.count_ones() == 1 || ended % ENDED_MAX == 0)
                        {
                            let mut inner = lock(&parent.inner);
                            let family = inner.family();
                            let ended = ended_in(parent.state.load(Ordering::SeqCst));
                            if sweep_due(ended, family.children.len()) {
                                parent.sweep(family);
                            }
                        }
                        return;
                    }
                }
                let end = self.accounted_end(parent, self.state.load(Ordering::Acquire));
                let (waker, watcher) = {
                    let mut inner = lock(&parent.inner);
                    let flags = parent.state.load(Ordering::SeqCst);
                    let family = inner.family();
                    if let Some(end) = end {
                        family.account.record(end, || self.account_as(end, parent));
                    }
                    self.leave(parent, family, slot, counted);
                    if flags & DONE != 0 {
                        // Nothing else will remove the ended children.
                        parent.sweep(family);
                    }
                    let live = inner.live_children(ended_in(parent.state.load(Ordering::SeqCst)));
                    let waker = if flags & JOINING != 0 && live == 0 {
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

    /// Removes this node from `parent`'s registry (`family`, under the
    /// parent's lock) and settles its part of the parent's `ended` count:
    /// every ended child is, in the end, counted once for each time it was
    /// removed. When a sweep removed it first (its key may hold another
    /// child by now), the sweep uncounted it: an uncounted node makes up for
    /// that.
    fn leave(&self, parent: &Node, family: &mut Family, slot: u32, counted: bool) {
        let registered = family
            .children
            .get(slot as usize)
            .is_some_and(|child| std::ptr::eq(&**child, self));
        match (registered, counted) {
            (true, true) => {
                family.children.remove(slot as usize);
                parent.state.fetch_sub(ENDED_ONE, Ordering::SeqCst);
            }
            (true, false) => {
                family.children.remove(slot as usize);
            }
            (false, true) => {}
            (false, false) => {
                parent.state.fetch_add(ENDED_ONE, Ordering::SeqCst);
            }
        }
    }

    /// Removes the ended children from this node's registry (`family` is
    /// this node's, under its lock), keeping some as spares while the node
    /// runs.
    fn sweep(&self, family: &mut Family) {
        let state = self.state.load(Ordering::SeqCst);
        let before = family.children.len();
        // As many spares as there are live children (as many as the ends to
        // come before the next sweep, at most), estimated from the ends
        // this node was told of, so that no child is made a spare only to
        // be let go below; none once the node has finished: they would keep
        // it alive.
        let live =
            usize::try_from(ended_in(state)).map_or(before, |ended| before.saturating_sub(ended));
        let finished = state & DONE != 0;
        let wanted = if finished { 0 } else { live.max(SPARES) };
        let spares = &mut family.spares;
        family.children.remove_where(
            |child| child.state.load(Ordering::SeqCst) & DONE != 0,
            |mut ended| {
                if spares.len() < wanted {
                    if let Some(unshared) = Arc::get_mut(&mut ended) {
                        unshared.retire();
                    }
                    spares.push_back(ended);
                }
            },
        );
        // The spares kept from earlier sweeps too, now that the live
        // children are known.
        let live = family.children.len();
        family
            .spares
            .truncate(if finished { 0 } else { live.max(SPARES) });
        let removed = before - live;
        if removed > 0 {
            // Wrapping, as the count is read: exact while it stays in range.
            let removed = (removed as u64) << ENDED_SHIFT;
            self.state.fetch_sub(removed, Ordering::SeqCst);
        }
    }
}

/// Pushes `children` on a walk's stack, each with the reason it gets
/// (made only when there are children), so that they are popped in
/// registry order.
fn push_children(
    walk: &mut Vec<(Arc<Node>, CancelReason)>,
    children: Vec<Arc<Node>>,
    reason: impl FnOnce() -> CancelReason,
) {
    if children.is_empty() {
        return;
    }
    let reason = reason();
    walk.extend(
        children
            .into_iter()
            .rev()
            .map(|child| (child, reason.clone())),
    );
}

impl Drop for Node {
    fn drop(&mut self) {
        // A chain of nodes each held only by the one below would otherwise
        // be dropped recursively, a stack frame per level: let go of the
        // parents one at a time.
        let mut parent = self.parent.take();
        while let Some(node) = parent {
            // Almost always shared (its parent's registry, its future): a
            // load, then the usual release, on the path every task takes.
            if Arc::strong_count(&node) != 1 {
                return;
            }
            parent = Arc::try_unwrap(node)
                .ok()
                .and_then(|mut node| node.parent.take());
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

fn snapshot(children: &Registry<Arc<Node>>) -> Vec<Arc<Node>> {
    children.values().cloned().collect()
}

/// A registry key as stored in a node's `state`: plus one, so that 0 means
/// "not registered".
fn slot_bits(key: usize) -> u64 {
    u64::from(slot_of(key).wrapping_add(1)) << SLOT_SHIFT
}

/// A registry key as a `u32` of 28 bits. A registry holds live children,
/// each a node of over a hundred bytes beside its task's own memory: 2^28
/// of them under one node would take some 90 GB before the key ran out.
fn slot_of(key: usize) -> u32 {
    u32::try_from(key)
        .ok()
        .filter(|&key| key < SLOT_MASK)
        .unwrap_or_else(|| unreachable!("over 2^28 live children under one node"))
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
            .field("kind", &self.kind())
            .field("name", &self.name)
            .field("location", &format_args!("{}", self.location))
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The node whose future is being polled on this thread: the task, the
    /// scope body, or the cleanup phase that user code runs in.
    static CURRENT: Cell<Option<Arc<Node>>> = const { Cell::new(None) };
}

/// Records, in the node being polled on this thread (if any), the number
/// of the `.await` its code is polling (see [`crate::wait`]).
pub(crate) fn record_wait(site: u32) {
    CURRENT.with(|cell| {
        let node = cell.take();
        if let Some(node) = &node {
            node.waiting.store(site, Ordering::Relaxed);
        }
        cell.set(node);
    });
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

/// Which thread this is, cheaply: a number given to each thread the first
/// time it asks (wrapping after 2^32 threads, which at worst makes a task
/// that ended on another thread look local: its memory is then freed where
/// it ended, which is correct, only slower).
fn this_thread() -> u32 {
    // Not part of the node's synchronisation: plain atomics under loom too.
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static THIS: Cell<u32> = const { Cell::new(0) };
    }
    THIS.with(|this| match this.get() {
        0 => {
            let number = NEXT
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .max(1);
            this.set(number);
            number
        }
        number => number,
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

#[cfg(all(test, not(tethered_loom), target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// A node is allocated for every task: 104 bytes (120 with the `Arc`'s
    /// counts) keeps it in glibc's fastbin sizes, which a worker frees into
    /// without taking the allocator's lock. At 112 bytes, a fan-out of
    /// 100,000 cancelled tasks took a quarter longer.
    #[test]
    fn a_node_stays_at_104_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 104);
    }

    #[test]
    fn a_registry_is_swept_once_a_quarter_of_it_has_ended() {
        // A few ended children are left for a later, larger batch.
        assert!(!sweep_due(SWEEP_AFTER - 1, 0));
        assert!(sweep_due(SWEEP_AFTER, 100));
        // With many live children, a sweep waits for a quarter of them.
        assert!(!sweep_due(999, 4000));
        assert!(sweep_due(1000, 4000));
        // However many there are, no more than `ENDED_MAX` ended ones wait.
        assert!(sweep_due(ENDED_MAX, 1 << 30));
        // The count can dip below 0 (a sweep may come before a count).
        assert!(!sweep_due(-3, 0));
    }

    #[test]
    fn a_start_is_kept_to_the_nanosecond_on_either_side_of_the_epoch() {
        let epoch = Instant::from_std(epoch());
        for offset in [
            std::time::Duration::ZERO,
            std::time::Duration::new(0, 1),
            std::time::Duration::new(3, 999_999_999),
            std::time::Duration::from_secs(86_400 * 365),
        ] {
            let after = epoch + offset;
            assert_eq!(from_epoch(since_epoch(after)), after);
            if let Some(before) = epoch.checked_sub(offset) {
                assert_eq!(from_epoch(since_epoch(before)), before);
            }
        }
    }

    #[test]
    fn the_state_word_keeps_its_fields_apart() {
        let node = Node::alloc(
            NodeKind::Shield.bits(),
            None,
            Location::caller(),
            Instant::now(),
            None,
        );
        node.state
            .fetch_or(slot_bits(7) | CANCELLED, Ordering::Relaxed);
        node.state.fetch_sub(3 * ENDED_ONE, Ordering::Relaxed);
        let state = node.state.load(Ordering::Relaxed);
        assert_eq!((slot_in(state), ended_in(state)), (7, -3));
        node.state.fetch_add(5 * ENDED_ONE, Ordering::Relaxed);
        let state = node.state.load(Ordering::Relaxed);
        assert_eq!((slot_in(state), ended_in(state)), (7, 2));
        assert_eq!(node.kind(), NodeKind::Shield);
        assert!(node.is_cancelled() && !node.is_done());
    }
}
