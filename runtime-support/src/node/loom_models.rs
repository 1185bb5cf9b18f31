//! Loom models of the node tree's synchronization.
//!
//! Run with
//! `RUSTFLAGS="--cfg tethered_loom" CARGO_TARGET_DIR=target/loom cargo test -p tethered --lib --profile loom loom_`.
//! The custom cfg swaps the node tree's `Arc`, `Mutex` and atomics for loom's
//! (see `sync.rs`) and leaves every other crate, tokio included, untouched.

use std::future::poll_fn;
use std::panic::Location;
use std::task::Poll;

use loom::sync::atomic::AtomicBool;
use loom::thread;

use super::sync::{Arc, Ordering};
use super::{Node, NodeKind};
use crate::reason::{CancelKind, CancelReason};

fn scope() -> Arc<Node> {
    Node::new(
        NodeKind::Scope,
        Some("scope".into()),
        Location::caller(),
        tokio::time::Instant::now(),
        None,
    )
}

fn child(parent: &Arc<Node>, kind: NodeKind) -> Arc<Node> {
    Node::new(
        kind,
        Some("child".into()),
        Location::caller(),
        tokio::time::Instant::now(),
        Some(parent.clone()),
    )
}

/// Every model is explored with at most four preemptions per execution
/// (loom's advice for models of this size): exhaustively, the first one
/// alone ran for more than eight minutes on a 2-core machine; bounded, all
/// of them take about a minute, and the races they check need two or three.
/// `LOOM_MAX_PREEMPTIONS` does not override it; edit it here to explore
/// further.
fn bounded() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(4);
    builder
}

/// Waits, as a scope does, until every child of `node` has ended. A lost
/// wake-up leaves this blocked forever, which loom reports as a deadlock.
fn join_children(node: &Arc<Node>) {
    loom::future::block_on(poll_fn(|cx| {
        if node.poll_children_done(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
}

/// A child completes while its scope is being cancelled: the scope's join
/// always wakes up, and the child either finished first (and was never
/// cancelled) or carries the scope's reason as its cause.
#[test]
fn loom_child_completes_while_scope_is_cancelled() {
    bounded().check(|| {
        let scope = scope();
        let task = child(&scope, NodeKind::Task);
        let reason = CancelReason::new(CancelKind::Explicit);

        let finisher = {
            let task = task.clone();
            thread::spawn(move || task.finish())
        };
        let canceller = {
            let scope = scope.clone();
            let reason = reason.clone();
            thread::spawn(move || assert!(scope.cancel(reason, false)))
        };

        join_children(&scope);
        finisher.join().unwrap();
        canceller.join().unwrap();

        assert!(scope.reason().unwrap().same_as(&reason));
        if let Some(inherited) = task.reason() {
            assert_eq!(inherited.kind(), CancelKind::ParentCancelled);
            assert!(inherited.cause().unwrap().same_as(&reason));
        }
        scope.finish();
    });
}

/// Two cancellers race on one node: exactly one wins, everyone observes the
/// winner's reason, and a child registered meanwhile inherits it.
#[test]
fn loom_first_canceller_wins() {
    bounded().check(|| {
        let scope = scope();
        let first = CancelReason::explicit("first");
        let second = CancelReason::explicit("second");

        let cancel_with = |reason: &CancelReason| {
            let scope = scope.clone();
            let reason = reason.clone();
            thread::spawn(move || scope.cancel(reason, false))
        };
        let a = cancel_with(&first);
        let b = cancel_with(&second);
        let late_child = child(&scope, NodeKind::Task);
        let won_a = a.join().unwrap();
        let won_b = b.join().unwrap();

        assert!(won_a ^ won_b, "exactly one cancel takes effect");
        let winner = if won_a { &first } else { &second };
        assert!(scope.reason().unwrap().same_as(winner));
        let inherited = late_child.reason().expect("the child was cancelled");
        assert!(inherited.cause().unwrap().same_as(winner));

        late_child.finish();
        join_children(&scope);
        scope.finish();
    });
}

/// A shield is registered while its scope starts joining: either the
/// registration is refused (the scope was sealed first), or the join waits
/// for the shield to end.
#[test]
fn loom_shield_registration_races_scope_close() {
    bounded().check(|| {
        let scope = scope();
        let shield_done = Arc::new(AtomicBool::new(false));

        let registrar = {
            let scope = scope.clone();
            let shield_done = shield_done.clone();
            thread::spawn(move || {
                let shield = Node::try_new(
                    NodeKind::Shield,
                    None,
                    Location::caller(),
                    tokio::time::Instant::now(),
                    &scope,
                );
                if let Some(shield) = &shield {
                    shield_done.store(true, Ordering::SeqCst);
                    shield.finish();
                }
                shield.is_some()
            })
        };

        join_children(&scope);
        let registered = registrar.join().unwrap();
        if registered {
            assert!(
                shield_done.load(Ordering::SeqCst),
                "the scope joined before its shield ended"
            );
        }
        scope.finish();
    });
}

/// A child ends (only counting its end: its parent is not closing) while
/// the parent starts joining, and a sibling is registered meanwhile (whose
/// registration removes ended children): the join always wakes up, once
/// both children have ended, and no node is left behind (loom reports a
/// leaked `Arc`, so a parent and an ended child keeping each other alive
/// would fail the model).
#[test]
fn loom_child_ends_while_a_sibling_registers_and_the_parent_joins() {
    bounded().check(|| {
        let scope = scope();
        let first = child(&scope, NodeKind::Task);
        let first_ended = Arc::new(AtomicBool::new(false));

        let finisher = {
            let first = first.clone();
            let first_ended = first_ended.clone();
            thread::spawn(move || {
                first_ended.store(true, Ordering::SeqCst);
                first.finish();
            })
        };
        let registrar = {
            let scope = scope.clone();
            thread::spawn(move || {
                let second = child(&scope, NodeKind::Task);
                second.finish();
            })
        };

        registrar.join().unwrap();
        join_children(&scope);
        assert!(
            first_ended.load(Ordering::SeqCst),
            "joined before a child ended"
        );
        assert_eq!(scope.child_count(), 0);
        finisher.join().unwrap();
        scope.finish();
    });
}

/// A child outlives its parent's end (an orphan): it leaves the registry
/// itself when it ends, whichever of the two ends first, so that neither
/// keeps the other alive.
#[test]
fn loom_an_orphan_ends_after_its_parent() {
    bounded().check(|| {
        let scope = scope();
        let orphan = child(&scope, NodeKind::Task);
        let ended = child(&scope, NodeKind::Task);
        ended.finish();

        let finisher = {
            let orphan = orphan.clone();
            thread::spawn(move || orphan.finish())
        };
        scope.finish();
        finisher.join().unwrap();
        assert!(scope.children().is_empty());
    });
}

/// A local child is woken from another thread while its scope's task polls
/// its rounds: the wake is never lost. Either the round that polls the
/// child comes after the wake (and sees what the waker did before waking),
/// or the wake queues the child again and wakes the scope's task, whose
/// next round polls it. A lost wake-up leaves the scope waiting forever,
/// which loom reports as a deadlock.
#[test]
fn loom_a_local_child_woken_from_another_thread_is_polled_again() {
    bounded().check(|| {
        let scope = scope();
        let local = Node::new_local(
            None,
            Location::caller(),
            tokio::time::Instant::now(),
            &scope,
        );
        let ready = Arc::new(AtomicBool::new(false));

        let waker = {
            let waker = Node::local_waker(&local);
            let ready = ready.clone();
            thread::spawn(move || {
                ready.store(true, Ordering::SeqCst);
                waker.wake();
            })
        };

        // The scope's task: a round at each poll, the child's "poll" ending
        // it once it sees `ready`.
        let mut round = Vec::new();
        loom::future::block_on(poll_fn(|cx| {
            scope.take_woken_local(cx.waker(), &mut round);
            for key in round.drain(..) {
                assert_eq!(key as usize, local.local_key());
                local.unqueue();
                if ready.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        }));
        waker.join().unwrap();
        local.finish();
        scope.finish();
    });
}
