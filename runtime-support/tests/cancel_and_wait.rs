//! `TaskHandle::cancel_and_wait`: exactly one answer, and no ambiguity when
//! the caller gives up or is cancelled while waiting.

mod common;

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tethered::testing::{assert_cancelled, assert_completed, assert_panicked};

use common::{EXPECTED, Flag, Log, Probe, quiet_expected_panics, secs};
use tethered::{CancelKind, Outcome, Scope};
use tokio::time::{Instant, sleep};

/// A child that, once cancelled, still needs `cleanup_secs` to finish: its
/// nested scope's cleanup runs after the child's future is dropped.
fn slow_to_cancel(log: &Log, cleanup_secs: u64) -> impl Future<Output = ()> + Send + 'static {
    let log = log.clone();
    async move {
        let _ = Scope::builder()
            .name("child-work")
            .run(async |inner| {
                let log = log.clone();
                inner.defer(async move {
                    sleep(secs(cleanup_secs)).await;
                    log.push("child cleanup done");
                });
                pending::<()>().await
            })
            .await;
    }
}

#[tokio::test(start_paused = true)]
async fn completed_when_the_task_finished_before_the_cancel() {
    let outcome = Scope::run(async |scope| {
        let task = scope.spawn(async { 42 });
        while !task.is_finished() {
            tokio::task::yield_now().await;
        }
        task.cancel_and_wait("too late").await
    })
    .await
    .unwrap();
    assert_eq!(assert_completed!(outcome), 42);
}

#[tokio::test(start_paused = true)]
async fn completed_when_the_task_finished_its_work_but_is_still_joining() {
    // The task's own future completed; it still waits for a nested scope it
    // dropped. A cancel arriving then does not turn it into a cancellation.
    let log = Log::new();
    let outcome = Scope::run(async |scope| {
        let log2 = log.clone();
        let task = scope.spawn(async move {
            let _ = tokio::time::timeout(secs(1), slow_to_cancel(&log2, 5)).await;
            "value"
        });
        sleep(secs(2)).await;
        assert!(!task.is_finished());
        task.cancel_and_wait("too late").await
    })
    .await
    .unwrap();
    assert!(
        matches!(outcome, Outcome::Completed("value")),
        "{outcome:?}"
    );
    assert_eq!(log.at("child cleanup done"), secs(6));
}

#[tokio::test(start_paused = true)]
async fn cancelled_with_the_reason_when_the_task_was_running() {
    let probe = Probe::new();
    let (outcome, line) = Scope::builder()
        .name("caller-scope")
        .run(async |scope| {
            let task = scope.spawn_named("running", probe.hang());
            sleep(secs(1)).await;
            let line = line!() + 1;
            let outcome = task.cancel_and_wait("no longer needed").await;
            (outcome, line)
        })
        .await
        .unwrap();
    let reason = assert_cancelled!(outcome, CancelKind::Explicit);
    assert_eq!(reason.message(), Some("no longer needed"));
    assert_eq!(reason.location().file(), file!());
    assert_eq!(reason.location().line(), line);
    assert_eq!(reason.origin(), Some("caller-scope"));
    assert!(
        reason.same_as(&probe.reason()),
        "the task saw the same reason"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_and_wait_returns_only_once_the_task_has_finished_cancelling() {
    let log = Log::new();
    Scope::run(async |scope| {
        let task = scope.spawn(slow_to_cancel(&log, 3));
        sleep(secs(1)).await;
        let outcome = task.cancel_and_wait("stop").await;
        assert!(outcome.is_cancelled());
        log.push("cancel_and_wait returned");
    })
    .await
    .unwrap();
    assert_eq!(
        log.names(),
        ["child cleanup done", "cancel_and_wait returned"]
    );
    assert_eq!(log.at("cancel_and_wait returned"), secs(4));
}

#[tokio::test(start_paused = true)]
async fn panicked_when_the_task_panicked_before_the_cancel() {
    quiet_expected_panics();
    // A panic cancels the scope's body, so the waiting is done by a shield
    // through a `'static` handle.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let error = Scope::run(async |scope| {
        let task = scope
            .handle()
            .try_spawn(async { panic!("{EXPECTED}: crashed first") })
            .unwrap();
        scope.shield(async move {
            sleep(secs(1)).await;
            let _ = tx.send(task.cancel_and_wait("too late").await);
        });
    })
    .await
    .unwrap_err();
    let payload = assert_panicked!(rx.await.unwrap());
    assert_eq!(payload.message(), format!("{EXPECTED}: crashed first"));
    assert_eq!(error.failures().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn caller_dropped_while_waiting_the_child_still_finishes_and_is_joined() {
    let log = Log::new();
    let started = Instant::now();
    Scope::run(async |scope| {
        let task = scope.spawn_named("child", slow_to_cancel(&log, 5));
        sleep(secs(1)).await;
        let waited = tokio::time::timeout(secs(2), task.cancel_and_wait("enough")).await;
        assert!(waited.is_err(), "the child needs 5s to cancel");
        log.push("caller gave up");
    })
    .await
    .unwrap();
    log.push("scope returned");
    assert_eq!(
        log.names(),
        ["caller gave up", "child cleanup done", "scope returned"]
    );
    assert_eq!(log.at("caller gave up"), secs(3));
    assert_eq!(log.at("child cleanup done"), secs(6));
    assert_eq!(started.elapsed(), secs(6));
}

#[tokio::test(start_paused = true)]
async fn caller_task_cancelled_while_waiting_the_child_still_finishes_and_is_joined() {
    let log = Log::new();
    let caller_probe = Probe::new();
    let started = Instant::now();
    Scope::run(async |scope| {
        let child = scope
            .handle()
            .try_spawn_named("child", slow_to_cancel(&log, 5))
            .unwrap();
        let log2 = log.clone();
        let guard = caller_probe.guard();
        let caller = scope.spawn_named("caller", async move {
            let _guard = guard;
            sleep(secs(1)).await;
            let outcome = child.cancel_and_wait("from caller").await;
            log2.push(format!("caller saw {}", outcome.is_cancelled()));
        });
        sleep(secs(2)).await;
        caller.cancel("caller cancelled");
    })
    .await
    .unwrap();
    log.push("scope returned");
    assert_eq!(log.names(), ["child cleanup done", "scope returned"]);
    assert_eq!(log.at("child cleanup done"), secs(6));
    assert_eq!(started.elapsed(), secs(6));
    assert_eq!(
        caller_probe.dropped_at().unwrap() - started,
        secs(2),
        "the caller itself stopped waiting when cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_and_wait_on_a_shield_hard_cancels_it() {
    let probe = Probe::new();
    let outcome = Scope::run(async |scope| {
        let shield = scope.shield_named("protected", probe.hang());
        sleep(secs(1)).await;
        shield.cancel_and_wait("explicitly").await
    })
    .await
    .unwrap();
    assert_eq!(
        outcome.cancel_reason().unwrap().message(),
        Some("explicitly")
    );
    assert!(probe.state().cancelled);
}

/// Runs `iterations` races between a task finishing and a cancel, on the
/// multi-thread runtime. `canceller_in_task` moves the cancel to another
/// task (so it may run on the other worker thread).
async fn race(iterations: u32, canceller_in_task: bool) -> (usize, usize) {
    let completed = AtomicUsize::new(0);
    let cancelled = AtomicUsize::new(0);
    for i in 0..iterations {
        let effect = Flag::new();
        let effect_in_task = effect.clone();
        let outcome = Scope::run(async |scope| {
            let work = async move {
                for _ in 0..(i % 3) {
                    tokio::task::yield_now().await;
                }
                effect_in_task.set();
                i
            };
            let handle = scope.handle().try_spawn(work).unwrap();
            let cancel = async move {
                for _ in 0..(i % 4) {
                    std::hint::spin_loop();
                    tokio::task::yield_now().await;
                }
                handle.cancel_and_wait("race").await
            };
            if canceller_in_task {
                scope.spawn(cancel).join().await.unwrap()
            } else {
                cancel.await
            }
        })
        .await
        .unwrap();
        match outcome {
            Outcome::Completed(value) => {
                assert_eq!(value, i);
                assert!(
                    effect.get(),
                    "iteration {i}: Completed without its side effect"
                );
                completed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Cancelled(reason) => {
                assert_eq!(reason.message(), Some("race"));
                assert!(
                    !effect.get(),
                    "iteration {i}: Cancelled after its side effect"
                );
                cancelled.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("iteration {i}: unexpected outcome {other:?}"),
        }
        // Nothing runs after the scope returned.
        let effect_after = effect.get();
        tokio::task::yield_now().await;
        assert_eq!(effect.get(), effect_after);
    }
    (
        completed.load(Ordering::Relaxed),
        cancelled.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_between_cancel_and_completion_always_gives_one_consistent_answer() {
    let (completed, cancelled) = race(2000, false).await;
    println!("completed {completed}, cancelled {cancelled}");
    assert_eq!(completed + cancelled, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_with_the_canceller_in_another_task_gives_one_consistent_answer() {
    let (completed, cancelled) = race(2000, true).await;
    println!("completed {completed}, cancelled {cancelled}");
    assert_eq!(completed + cancelled, 2000);
}

#[tokio::test(start_paused = true)]
async fn cancel_and_wait_from_a_task_records_that_task_as_origin() {
    let probe = Probe::new();
    let outcome = Scope::run(async |scope| {
        let target = scope.handle().try_spawn(probe.hang()).unwrap();
        scope
            .spawn_named("supervisor", async move {
                target.cancel_and_wait(CancelKind::Shutdown).await
            })
            .join()
            .await
            .unwrap()
    })
    .await
    .unwrap();
    let reason = outcome.cancel_reason().unwrap();
    assert_eq!(reason.kind(), CancelKind::Shutdown);
    assert_eq!(reason.origin(), Some("supervisor"));
    let seen = Arc::new(probe.reason());
    assert!(seen.same_as(reason));
}

#[tokio::test(start_paused = true)]
async fn stop_and_wait_returns_completed_when_the_task_stops_within_the_grace() {
    let started = Instant::now();
    let outcome = Scope::run(async |scope| {
        let task = scope.spawn(async {
            let reason = tethered::stop_requested().await;
            sleep(secs(1)).await; // finishing the batch
            reason.message().map(str::to_owned)
        });
        task.stop_and_wait("deploy", secs(5)).await
    })
    .await
    .unwrap();
    assert!(
        matches!(&outcome, Outcome::Completed(Some(m)) if m == "deploy"),
        "{outcome:?}"
    );
    assert_eq!(started.elapsed(), secs(1));
}

#[tokio::test(start_paused = true)]
async fn stop_and_wait_cancels_with_the_same_reason_once_the_grace_is_over() {
    let probe = Probe::new();
    let started = Instant::now();
    let (outcome, line) = Scope::run(async |scope| {
        let task = scope.spawn(probe.hang());
        let line = line!() + 1;
        (task.stop_and_wait("deploy", secs(5)).await, line)
    })
    .await
    .unwrap();
    let reason = outcome.cancel_reason().expect("cancelled after the grace");
    assert_eq!(reason.message(), Some("deploy"));
    assert_eq!(reason.location().line(), line);
    let state = probe.state();
    assert!(state.stopping && state.cancelled);
    assert_eq!(state.dropped_at.unwrap() - started, secs(5));
}

// ---------------------------------------------------------------------------
// An error wins over a cancellation that arrives after it
// ---------------------------------------------------------------------------

/// A task's work: a scope whose child fails at once, and whose cleanup then
/// takes a second, so that the scope is still unwinding from its failure
/// when the task is cancelled.
async fn work_that_fails(log: Log) -> Result<(), tethered::ScopeError> {
    Scope::builder()
        .name("work")
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                sleep(secs(1)).await;
                log.push("cleanup done");
            });
            scope.spawn_fallible_named("parser", async { Err::<(), _>("bad header") });
            pending::<()>().await
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_the_cancel_reaches_whoever_cancels_and_waits() {
    let log = Log::new();
    let started = Instant::now();
    let outcome = Scope::run(async |scope| {
        let task = scope.spawn_named("worker", work_that_fails(log.clone()));
        // The parser has failed; the work scope is running its cleanup.
        tokio::task::yield_now().await;
        task.cancel_and_wait("deploy").await
    })
    .await
    .unwrap();
    // The caller sees the failure, not a cancellation…
    let Outcome::Completed(Err(error)) = outcome else {
        panic!("the failure was lost: {outcome:?}")
    };
    assert_eq!(error.scope(), Some("work"));
    assert_eq!(error.failures()[0].task(), Some("parser"));
    // …after the failed scope finished unwinding, cleanup included.
    assert_eq!(log.names(), ["cleanup done"]);
    assert_eq!(started.elapsed(), secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_fallible_task_whose_scope_failed_before_its_cancel_fails_its_own_scope() {
    let log = Log::new();
    let error = Scope::run(async |scope| {
        scope.spawn_fallible_named("worker", work_that_fails(log.clone()));
        tokio::task::yield_now().await;
        scope.cancel("deploy");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    // The worker's own failure, its scope's error inside: not a cancelled
    // worker and a failure of nobody's.
    let failure = &error.failures()[0];
    assert_eq!(failure.task(), Some("worker"));
    let inner = failure
        .error()
        .unwrap()
        .downcast_ref::<tethered::ScopeError>()
        .unwrap();
    assert_eq!(inner.failures()[0].task(), Some("parser"));
}

#[tokio::test(start_paused = true)]
async fn a_supervised_child_whose_scope_failed_before_its_cancel_ends_failed() {
    let log = Log::new();
    let supervised = tethered::Supervisor::builder()
        .run(async |sv| {
            let worker = sv.spawn("worker", work_that_fails(log.clone())).unwrap();
            tokio::task::yield_now().await;
            worker.cancel_and_wait("deploy").await
        })
        .await
        .unwrap();
    let exit = supervised.value.unwrap();
    assert!(exit.is_failure(), "{exit:?}");
}

#[tokio::test(start_paused = true)]
async fn the_cancel_stays_pending_and_takes_effect_at_the_next_await() {
    let log = Log::new();
    let reached = Flag::new();
    let outcome = Scope::run(async |scope| {
        let (log, after) = (log.clone(), reached.clone());
        let task = scope.spawn(async move {
            let failed = work_that_fails(log).await;
            // The task saw its error, then awaits again: the cancel that
            // waited for the failed scope ends it here.
            sleep(secs(5)).await;
            after.set();
            failed
        });
        tokio::task::yield_now().await;
        task.cancel_and_wait("deploy").await
    })
    .await
    .unwrap();
    assert!(outcome.is_cancelled(), "{outcome:?}");
    assert!(!reached.get());
    assert_eq!(log.names(), ["cleanup done"]);
}

#[tokio::test(start_paused = true)]
async fn a_scope_dropped_by_the_task_does_not_hold_back_its_cancel() {
    // The failed scope is orphaned (the task dropped it in a `select!`):
    // the task is not awaiting it, so a cancel ends the task at once.
    let log = Log::new();
    let started = Instant::now();
    let outer = Scope::run(async |scope| {
        let log = log.clone();
        let task = scope.spawn(async move {
            tokio::select! {
                biased;
                _ = work_that_fails(log) => {}
                () = tokio::task::yield_now() => {}
            }
            pending::<()>().await
        });
        tokio::task::yield_now().await;
        task.cancel_and_wait("deploy").await.is_cancelled()
    })
    .await;
    // The orphan's failure still reaches the scope above.
    let error = outer.unwrap_err();
    assert_eq!(error.failures()[0].task(), Some("work"));
    assert_eq!(
        started.elapsed(),
        secs(1),
        "the orphan's cleanup was waited for"
    );
}
