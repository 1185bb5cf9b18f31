//! Local children: polled by their scope's own task, borrowing what
//! outlives the scope, `!Send` in a non-`Send` scope, with everything a
//! spawned child has (a node, a handle, reasons, stop requests, failure
//! semantics), mixed freely with spawned children.

mod common;

use std::cell::{Cell, RefCell};
use std::future::{Future, pending};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use common::{EXPECTED, Log, Probe, ms, quiet_expected_panics, secs};
use tethered::testing::assert_cancelled;
use tethered::{CancelKind, Scope};
use tokio::time::sleep;

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(start_paused = true)]
async fn local_children_borrow_the_callers_data_and_run_interleaved_with_the_body() {
    let words = ["alpha".to_owned(), "beta".to_owned(), "gamma".to_owned()];
    let log = Log::new();
    let lengths = Scope::run_local(|scope| {
        Box::pin(async {
            let handles: Vec<_> = words
                .iter()
                .enumerate()
                .map(|(n, word)| {
                    let log = &log;
                    scope.spawn_local(async move {
                        sleep(secs(n as u64 + 1)).await;
                        log.push(format!("child {word}"));
                        word.len()
                    })
                })
                .collect();
            sleep(ms(1500)).await;
            log.push("body awake");
            let mut lengths = Vec::new();
            for handle in handles {
                lengths.push(handle.join().await.unwrap());
            }
            lengths
        })
    })
    .await
    .unwrap();
    assert_eq!(lengths, [5, 4, 5]);
    assert_eq!(
        log.names(),
        ["child alpha", "body awake", "child beta", "child gamma"]
    );
    // Concurrent, on one task: the three ran side by side.
    assert_eq!(log.at("child gamma"), secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_send_scope_with_local_children_runs_in_a_spawned_task() {
    let shared = std::sync::Arc::new(vec![1u64, 2, 3]);
    let data = shared.clone();
    let task = tokio::spawn(async move {
        let data = &data;
        let run = Scope::run_local(|scope| {
            Box::pin(async {
                let sum = scope.spawn_local(async move { data.iter().sum::<u64>() });
                // A spawned sibling, joined alike.
                let spawned = scope.spawn(async { 10u64 });
                sum.join().await.unwrap() + spawned.join().await.unwrap()
            })
        });
        assert_send(&run);
        run.await.unwrap()
    });
    assert_eq!(task.await.unwrap(), 16);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
#[allow(clippy::await_holding_refcell_ref)]
async fn a_non_send_scope_holds_rc_and_refcell_borrows_across_awaits() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let tallies: Vec<RefCell<u64>> = (0..3).map(|_| RefCell::new(0)).collect();
    let total = Cell::new(0);
    Scope::run_local_non_send(async |scope| {
        for (n, tally) in (1..=3u64).zip(&tallies) {
            let log = log.clone();
            let total = &total;
            scope.spawn_local_named(format!("counter {n}"), async move {
                // A `RefMut` (`!Send`) held across an `.await`, on purpose:
                // each child has a cell of its own.
                let mut tally = tally.borrow_mut();
                sleep(secs(n)).await;
                *tally += n;
                log.borrow_mut().push(n);
                total.set(total.get() + n);
            });
        }
    })
    .await
    .unwrap();
    assert_eq!(*log.borrow(), [1, 2, 3]);
    assert_eq!(total.get(), 6);
    assert_eq!(*tallies[2].borrow(), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_busy_local_child_does_not_starve_its_siblings_or_the_body() {
    let spins = AtomicUsize::new(0);
    let log = Log::new();
    Scope::run_local(|scope| {
        Box::pin(async {
            let busy = scope.spawn_local(async {
                loop {
                    spins.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            });
            scope.spawn_local(async {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                log.push("sibling done");
            });
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            log.push("body done yielding");
            busy.cancel("enough");
        })
    })
    .await
    .unwrap();
    // Both went on while the busy child spun: in the same round, the body
    // first (it is polled before the children).
    assert_eq!(log.names(), ["body done yielding", "sibling done"]);
    assert!(spins.load(Ordering::Relaxed) < 10);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_local_child_is_dropped_at_its_await_and_its_drop_sees_why() {
    let probe = Probe::new();
    Scope::run_local(|scope| {
        Box::pin(async {
            let child = scope.spawn_local_named("waiter", probe.hang());
            sleep(secs(1)).await;
            let outcome = child.cancel_and_wait("not needed any more").await;
            assert_cancelled!(outcome, "not needed any more");
        })
    })
    .await
    .unwrap();
    assert!(probe.polled());
    let reason = probe.reason();
    assert_eq!(reason.message(), Some("not needed any more"));
    assert_eq!(reason.kind(), CancelKind::Explicit);
}

#[tokio::test(start_paused = true)]
async fn a_failing_local_child_fails_the_scope_and_cancels_every_sibling() {
    let (local, spawned, body) = (Probe::new(), Probe::new(), Probe::new());
    let error = Scope::run_local(|scope| {
        Box::pin(async {
            scope.spawn_local_named("local sibling", local.hang());
            scope.spawn_named("spawned sibling", spawned.hang());
            scope.spawn_local_fallible_named("broken", async {
                sleep(secs(1)).await;
                Err::<(), _>("disk full")
            });
            let _guard = body.guard();
            pending::<()>().await
        })
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.failures()[0].task(), Some("broken"));
    for probe in [&local, &spawned, &body] {
        let reason = probe.reason();
        assert_eq!(reason.kind(), CancelKind::SiblingFailed);
        assert_eq!(reason.origin(), Some("broken"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_local_child_is_reported_with_its_payload() {
    quiet_expected_panics();
    let sibling = Probe::new();
    let error = Scope::run_local(|scope| {
        Box::pin(async {
            scope.spawn_local(sibling.hang());
            scope.spawn_local_named("boom", async {
                sleep(secs(1)).await;
                panic!("{EXPECTED}");
            });
        })
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures()[0].task(), Some("boom"));
    assert!(error.to_string().contains(EXPECTED), "{error}");
    assert_eq!(sibling.reason().kind(), CancelKind::SiblingFailed);
}

#[tokio::test(start_paused = true)]
async fn a_failing_spawned_child_cancels_the_local_ones() {
    let local = Probe::new();
    let error = Scope::run_local(|scope| {
        Box::pin(async {
            scope.spawn_local_named("local", local.hang());
            scope.spawn_fallible_named("remote", async {
                sleep(secs(1)).await;
                Err::<(), _>("refused")
            });
        })
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures()[0].task(), Some("remote"));
    assert_eq!(local.reason().origin(), Some("remote"));
}

#[tokio::test(start_paused = true)]
async fn local_children_see_stop_requests_and_the_scopes_timeout() {
    let stopped = Scope::run_local(|scope| {
        Box::pin(async {
            let child = scope.spawn_local(async {
                tethered::stop_requested().await;
                "stopped politely"
            });
            sleep(secs(1)).await;
            scope.stop("deploy");
            child.join().await.unwrap()
        })
    })
    .await
    .unwrap();
    assert_eq!(stopped, "stopped politely");

    let probe = Probe::new();
    let error = Scope::builder()
        .timeout(secs(2))
        .run_local(|scope| {
            Box::pin(async {
                scope.spawn_local(probe.hang());
            })
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(probe.reason().root().kind(), CancelKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_local_child_is_in_the_tree_with_its_name_and_line() {
    let line = line!() + 3;
    Scope::run_local(|scope| {
        Box::pin(async {
            let child = scope.spawn_local_named("indexer", pending::<()>());
            tokio::task::yield_now().await;
            let tree = tethered::tree().to_string();
            let at = format!("tests/local.rs:{line}");
            assert!(
                tree.lines()
                    .any(|entry| entry.contains("`indexer`") && entry.contains(&at)),
                "{tree}"
            );
            child.cancel("done looking");
        })
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_local_child_started_in_a_cancelled_scope_is_never_polled() {
    let probe = Probe::new();
    let error = Scope::run_local(|scope| {
        Box::pin(async {
            scope.cancel("closing");
            let child = scope.spawn_local(probe.hang());
            assert!(child.is_finished() || !probe.polled());
        })
    })
    .await;
    assert!(error.is_err() || error.is_ok());
    assert!(!probe.polled());
    assert!(probe.dropped());
}

#[tokio::test(start_paused = true)]
async fn a_scope_nested_in_a_local_child_is_joined_before_the_child_ends() {
    let log = Log::new();
    Scope::run_local(|scope| {
        Box::pin(async {
            let log = &log;
            scope.spawn_local(async move {
                Scope::run(async |inner| {
                    let log = log.clone();
                    inner.spawn(async move {
                        sleep(secs(2)).await;
                        log.push("grandchild");
                    });
                })
                .await
                .unwrap();
                log.push("local child");
            });
        })
    })
    .await
    .unwrap();
    assert_eq!(log.names(), ["grandchild", "local child"]);
}

/// A scope's future dropped mid-flight drops its local children right
/// there, their `Drop` seeing the reason; the borrowed data is never used
/// again.
#[tokio::test(start_paused = true)]
async fn a_dropped_scope_drops_its_local_children_at_once_with_the_reason() {
    let probe = Probe::new();
    let timed_out = tokio::time::timeout(
        secs(1),
        Scope::run_local(|scope| {
            Box::pin(async {
                scope.spawn_local(probe.hang());
                pending::<()>().await
            })
        }),
    )
    .await;
    assert!(timed_out.is_err());
    assert!(probe.dropped());
    assert_eq!(probe.reason().kind(), CancelKind::ParentCancelled);
    assert_eq!(probe.reason().root().kind(), CancelKind::Dropped);
}

/// The trilemma's escape hatch, tried: the scope's future leaked with
/// `mem::forget` while its local children borrow a local. They were inside
/// the leaked future, so they are never polled again, and never dropped:
/// freeing what they borrowed afterwards touches nothing.
#[test]
fn a_leaked_scope_leaks_its_local_children_and_nothing_dangles() {
    struct CountsDrops<'a>(&'a AtomicUsize);
    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let polls = AtomicUsize::new(0);
    let drops = AtomicUsize::new(0);
    {
        let borrowed = String::from("lives on the stack of this block");
        let (polls, drops, borrowed) = (&polls, &drops, &borrowed);
        let mut scope = Box::pin(Scope::run_local(|scope| {
            Box::pin(async {
                scope.spawn_local(async move {
                    let _counts = CountsDrops(drops);
                    loop {
                        polls.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(borrowed.len(), 32);
                        tokio::task::yield_now().await;
                    }
                });
                pending::<()>().await
            })
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(scope.as_mut().poll(&mut cx).is_pending());
        assert!(Pin::new(&mut scope).poll(&mut cx).is_pending());
        std::mem::forget(scope);
        // `borrowed` is freed here, with the leaked children still
        // holding references to it.
    }
    let polled = polls.load(Ordering::SeqCst);
    assert!(polled >= 1);
    // Nothing polls the leaked children again, nothing drops them.
    runtime.block_on(async { sleep(Duration::from_millis(10)).await });
    assert_eq!(polls.load(Ordering::SeqCst), polled);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
}

/// A `Send` scope's local child waits for a value sent from a task on
/// another worker: the wake comes from that worker, and the child runs
/// again in its scope's next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_child_woken_from_another_worker_runs_again() {
    let answer = tokio::spawn(async {
        Scope::run_local(|scope| {
            Box::pin(async {
                let mut handles = Vec::new();
                let mut senders = Vec::new();
                for n in 0..50u64 {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    senders.push(tx);
                    handles.push(scope.spawn_local(async move { rx.await.unwrap() + n }));
                }
                // Sent from other tasks, on whichever worker they run.
                for (n, tx) in senders.into_iter().enumerate() {
                    tokio::spawn(async move { tx.send(n as u64).unwrap() });
                }
                let mut sum = 0;
                for handle in handles {
                    sum += handle.join().await.unwrap();
                }
                sum
            })
        })
        .await
        .unwrap()
    });
    // A lost wake-up would hang here: the guard turns it into a failure.
    let sum = tokio::time::timeout(secs(30), answer)
        .await
        .expect("a local child's wake-up was lost")
        .unwrap();
    assert_eq!(sum, 2 * (0..50).sum::<u64>());
}

#[tokio::test(flavor = "current_thread")]
async fn local_children_are_polled_in_the_order_they_were_woken() {
    let log = Log::new();
    Scope::run_local(|scope| {
        Box::pin(async {
            let mut senders = Vec::new();
            let mut handles = Vec::new();
            for name in ["a", "b", "c"] {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                senders.push(tx);
                let log = &log;
                handles.push(scope.spawn_local(async move {
                    rx.await.unwrap();
                    log.push(name);
                }));
            }
            // Their first round: each starts waiting.
            tokio::task::yield_now().await;
            // Woken c, then b, then a, all before the next round.
            for tx in senders.into_iter().rev() {
                tx.send(()).unwrap();
            }
            for handle in handles {
                handle.join().await.unwrap();
            }
        })
    })
    .await
    .unwrap();
    assert_eq!(log.names(), ["c", "b", "a"]);
}

/// A local child's waker outlives the child: woken after the child has
/// ended, and after later children were started in its place, it wakes
/// nothing, and every later child still runs to its end.
#[tokio::test(flavor = "current_thread")]
async fn the_waker_of_an_ended_local_child_wakes_nothing() {
    let total = Scope::run_local(|scope| {
        Box::pin(async {
            let kept = scope
                .spawn_local(std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(cx.waker().clone())
                }))
                .join()
                .await
                .unwrap();
            let mut total = 0;
            // Enough ended children for their scope to let them go, and
            // their keys to be taken again.
            for round in 0..4u64 {
                let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                let mut handles: Vec<_> = (0..40u64)
                    .map(|n| scope.spawn_local(async move { n }))
                    .collect();
                handles.push(scope.spawn_local(async move { rx.await.unwrap() }));
                kept.wake_by_ref();
                tokio::task::yield_now().await;
                kept.wake_by_ref();
                tx.send(round).unwrap();
                for handle in handles {
                    total += handle.join().await.unwrap();
                }
            }
            kept.wake();
            total
        })
    })
    .await
    .unwrap();
    assert_eq!(total, 4 * (0..40).sum::<u64>() + (0..4).sum::<u64>());
}

/// Local children wake each other: one waits for its sibling's value, and
/// a chain of them hands a token along, each woken by the one before it
/// during the same round or the next. Every wake reaches its child.
#[tokio::test(flavor = "current_thread")]
async fn local_children_wake_each_other_within_and_across_rounds() {
    let relayed = Scope::run_local(|scope| {
        Box::pin(async {
            // (A handle borrows its scope, so it cannot move into a child.)
            let (value, first) = tokio::sync::oneshot::channel::<u32>();
            scope.spawn_local(async {
                tokio::task::yield_now().await;
                value.send(20).unwrap();
            });
            let joiner = scope.spawn_local(async { first.await.unwrap() + 1 });

            let (head, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
            for _ in 0..10 {
                let (tx, next) = tokio::sync::mpsc::channel::<u32>(1);
                let mut from = std::mem::replace(&mut rx, next);
                scope.spawn_local(async move {
                    let token = from.recv().await.unwrap();
                    tx.send(token + 1).await.unwrap();
                });
            }
            head.send(0).await.unwrap();
            let relayed = rx.recv().await.unwrap();
            (joiner.join().await.unwrap(), relayed)
        })
    })
    .await
    .unwrap();
    assert_eq!(relayed, (21, 10));
}
