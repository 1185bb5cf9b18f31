//! A local child's node is its future's waker (see [`crate::LocalScope`]):
//! waking it queues the child in its scope's family, for the scope's task
//! to poll in its next round. A node is already shared, `'static` and
//! `Send + Sync`, so a local child's waker is one more reference to its
//! node rather than an allocation of its own.

use std::borrow::Cow;
use std::panic::Location;
use std::task::{Wake, Waker};

use tokio::time::Instant;

use super::sync::{Arc, Ordering, lock};
use super::{DONE, LOCAL, Node, NodeKind, QUEUED, slot_in, store_waker};

impl Node {
    /// Creates a local child's node under `parent` (its scope's node): a
    /// task, queued already (see [`Node::register`]), so that its scope
    /// polls it in its next round, which comes without a wake: the scope's
    /// body starts local children, and the scope polls its local children
    /// each time the body has been polled.
    pub(crate) fn new_local(
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        started: Instant,
        parent: &Arc<Node>,
    ) -> Arc<Node> {
        Node::register(
            NodeKind::Task,
            LOCAL | QUEUED,
            name,
            location,
            started,
            parent,
            false,
        )
        .unwrap_or_else(|| unreachable!("registration only fails when asked to check"))
    }

    /// The key a local child is kept under by its scope: its key in the
    /// scope node's registry, which no other child takes while this one is
    /// registered, and this one is until it has ended.
    pub(crate) fn local_key(&self) -> usize {
        slot_in(self.state.load(Ordering::Relaxed)) as usize
    }

    /// A local child's waker: its node.
    #[cfg(not(tethered_loom))]
    pub(crate) fn local_waker(node: &Arc<Node>) -> Waker {
        Waker::from(Arc::clone(node))
    }

    /// A local child's waker: its node, behind a `std` `Arc` (a `Waker` is
    /// made from one of those, and the models' nodes are in loom's).
    #[cfg(tethered_loom)]
    pub(crate) fn local_waker(node: &Arc<Node>) -> Waker {
        struct ModelWaker(Arc<Node>);
        impl Wake for ModelWaker {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.wake_local();
            }
        }
        Waker::from(std::sync::Arc::new(ModelWaker(Arc::clone(node))))
    }

    /// Marks a local child as taken off the queue, just before its scope
    /// polls it: a wake from then on, during the poll too, queues it again.
    pub(crate) fn unqueue(&self) {
        self.state.fetch_and(!QUEUED, Ordering::AcqRel);
    }

    /// Queues a local child to be polled, unless it is queued already or
    /// has ended, and wakes the task that polls its scope's local children.
    pub(crate) fn wake_local(&self) {
        let state = self.state.fetch_or(QUEUED, Ordering::AcqRel);
        if state & (QUEUED | DONE) != 0 || state & LOCAL == 0 {
            return;
        }
        let Some(parent) = self.parent.as_ref() else {
            return;
        };
        let waker = {
            let mut inner = lock(&parent.inner);
            let family = inner.family();
            family.woken.push(slot_in(state));
            family.local_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Moves the keys of the local children woken or started since the
    /// last call into `into` (empty: the two lists trade their memory), in
    /// the order they were, and keeps `waker` (the task's that polls them)
    /// for the next wake to take.
    pub(crate) fn take_woken_local(&self, waker: &Waker, into: &mut Vec<u32>) {
        debug_assert!(into.is_empty(), "the keys of a round not yet polled");
        let mut inner = lock(&self.inner);
        let family = inner.family();
        store_waker(&mut family.local_waker, waker);
        std::mem::swap(into, &mut family.woken);
    }

    /// Lets go of the wakers a local child's node may keep of itself (for
    /// a `stop_requested()` it awaited, or a nested scope it waited for):
    /// each is the node, which would otherwise keep itself alive.
    pub(super) fn release_own_wakers(&self) {
        let own = {
            let mut inner = lock(&self.inner);
            (inner.waker.take(), inner.take_stop_wakers())
        };
        drop(own);
    }
}

/// A local child's node wakes its child (see [`Node::wake_local`]).
impl Wake for Node {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_local();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.wake_local();
    }
}

#[cfg(all(test, not(tethered_loom)))]
mod tests {
    use super::*;

    /// A root scope's node, and a local child's under it.
    fn scope_with_local_child() -> (Arc<Node>, Arc<Node>) {
        let scope = Node::new(
            NodeKind::Scope,
            None,
            Location::caller(),
            Instant::now(),
            None,
        );
        let local = Node::new_local(None, Location::caller(), Instant::now(), &scope);
        (scope, local)
    }

    #[test]
    fn a_local_childs_node_lets_go_of_its_own_wakers_when_it_ends() {
        let (scope, local) = scope_with_local_child();
        // Its future waits for a stop request, with its own waker.
        assert!(local.poll_stop(&Node::local_waker(&local)).is_none());
        // Held by its scope's registry, by this test, and by itself.
        assert_eq!(Arc::strong_count(&local), 3);
        local.finish();
        assert_eq!(Arc::strong_count(&local), 2);
        scope.finish();
        assert_eq!(Arc::strong_count(&local), 1);
    }

    #[test]
    fn a_wake_queues_a_local_child_once_until_it_is_polled() {
        let (scope, local) = scope_with_local_child();
        let waker = Node::local_waker(&local);
        let mut round = Vec::new();
        // New: queued once, however often woken before its first poll.
        waker.wake_by_ref();
        scope.take_woken_local(Waker::noop(), &mut round);
        assert_eq!(round, [local.local_key() as u32]);
        round.clear();
        local.unqueue();
        waker.wake_by_ref();
        waker.wake_by_ref();
        scope.take_woken_local(Waker::noop(), &mut round);
        assert_eq!(round, [local.local_key() as u32]);
        round.clear();
        // Ended: a wake queues nothing.
        local.unqueue();
        local.finish();
        waker.wake();
        scope.take_woken_local(Waker::noop(), &mut round);
        assert!(round.is_empty());
        scope.finish();
    }
}
