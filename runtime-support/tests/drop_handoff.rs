//! A scope whose future is dropped mid-flight (by `tokio::time::timeout`,
//! `select!`, or its task being cancelled) cancels its children and hands
//! them, with its cleanups, to the nearest enclosing tethered task, which
//! does not complete before they have finished.

mod common;

use std::future::pending;
use tethered::testing::assert_cancelled;

use common::{EXPECTED, Log, Probe, quiet_expected_panics, secs};
use tethered::{CancelKind, EntryState, FailureKind, Outcome, Scope, ScopeError};
use tokio::time::{Instant, sleep};

/// The body of a scope that is slow to wind down: a child that hangs until
/// cancelled (probed), a shield that needs 5s, and a cleanup that needs 3s
/// and runs after the shield.
async fn slow_scope_body(scope: &Scope, log: &Log, child: &Probe) {
    scope.spawn_named("child", child.hang());
    let shield_log = log.clone();
    scope.shield_named("flush", async move {
        sleep(secs(5)).await;
        shield_log.push("shield done");
    });
    let cleanup_log = log.clone();
    scope.defer(async move {
        sleep(secs(3)).await;
        cleanup_log.push("cleanup done");
    });
    pending::<()>().await
}

#[tokio::test(start_paused = true)]
async fn scope_dropped_by_timeout_in_a_task_cancels_its_children_with_a_reason() {
    let child = Probe::new();
    let log = Log::new();
    let inner_location = Scope::run(async |outer| {
        let child = child.clone();
        let log = log.clone();
        outer.spawn_named("runner", async move {
            let dropped = tokio::time::timeout(secs(1), async {
                Scope::builder()
                    .name("inner-dropped-by-timeout")
                    .run(async |scope| slow_scope_body(scope, &log, &child).await)
                    .await
            })
            .await;
            assert!(dropped.is_err());
        });
        sleep(std::time::Duration::from_millis(500)).await;
        // `tree()` is process-wide and other tests run at the same time:
        // the name is unique to this test.
        let tree = tethered::tree();
        let inner = tree
            .iter()
            .find(|entry| entry.name() == Some("inner-dropped-by-timeout"));
        inner.expect("the inner scope is running").location()
    })
    .await
    .unwrap();

    assert_eq!(
        child.dropped_at().unwrap() - (Instant::now() - log.now()),
        secs(1)
    );
    let reason = child.reason();
    assert_eq!(reason.kind(), CancelKind::ParentCancelled);
    assert_eq!(reason.origin(), Some("inner-dropped-by-timeout"));
    let cause = reason.cause().expect("why the scope was dropped");
    assert_eq!(cause.kind(), CancelKind::Dropped);
    assert_eq!(cause.location().file(), file!());
    assert_eq!(
        cause.location(),
        inner_location,
        "located at the dropped scope"
    );
    assert_eq!(
        cause.origin(),
        Some("runner"),
        "dropped by code in `runner`"
    );
}

#[tokio::test(start_paused = true)]
async fn task_join_waits_for_a_scope_dropped_by_timeout() {
    let child = Probe::new();
    let log = Log::new();
    Scope::run(async |outer| {
        let log2 = log.clone();
        let child = child.clone();
        let runner = outer.spawn_named("runner", async move {
            let dropped = tokio::time::timeout(
                secs(1),
                Scope::run(async |scope| slow_scope_body(scope, &log2, &child).await),
            )
            .await;
            assert!(dropped.is_err());
            log2.push("runner body done");
            "runner value"
        });
        let outcome = runner.join().await;
        assert!(
            matches!(outcome, Outcome::Completed("runner value")),
            "{outcome:?}"
        );
        log.push("runner joined");
    })
    .await
    .unwrap();

    assert_eq!(
        log.names(),
        [
            "runner body done",
            "shield done",
            "cleanup done",
            "runner joined"
        ]
    );
    assert_eq!(log.at("runner body done"), secs(1));
    assert_eq!(log.at("shield done"), secs(5));
    assert_eq!(log.at("cleanup done"), secs(8));
    assert_eq!(log.at("runner joined"), secs(8));
    assert_eq!(
        child.dropped_at().unwrap() - (Instant::now() - log.now()),
        secs(1)
    );
}

#[tokio::test(start_paused = true)]
async fn task_join_waits_for_a_scope_dropped_by_select() {
    let child = Probe::new();
    let log = Log::new();
    Scope::run(async |outer| {
        let log2 = log.clone();
        let child = child.clone();
        let runner = outer.spawn_named("runner", async move {
            tokio::select! {
                _ = Scope::run(async |scope| slow_scope_body(scope, &log2, &child).await) => {
                    unreachable!("the scope body never returns");
                }
                () = sleep(secs(2)) => log2.push("select took the timer"),
            }
        });
        runner.join().await.unwrap();
        log.push("runner joined");
    })
    .await
    .unwrap();

    assert_eq!(
        log.names(),
        [
            "select took the timer",
            "shield done",
            "cleanup done",
            "runner joined"
        ]
    );
    assert_eq!(log.at("select took the timer"), secs(2));
    assert_eq!(log.at("runner joined"), secs(8));
    let reason = child.reason();
    assert_eq!(reason.kind(), CancelKind::ParentCancelled);
    assert_eq!(reason.cause().unwrap().kind(), CancelKind::Dropped);
}

#[tokio::test(start_paused = true)]
async fn scope_body_dropping_a_nested_scope_waits_for_it_before_returning() {
    let child = Probe::new();
    let log = Log::new();
    let started = Instant::now();
    let value = Scope::run(async |_outer| {
        let dropped = tokio::time::timeout(
            secs(1),
            Scope::run(async |scope| slow_scope_body(scope, &log, &child).await),
        )
        .await;
        assert!(dropped.is_err());
        log.push("outer body done");
        "outer value"
    })
    .await
    .unwrap();
    log.push("outer scope returned");
    assert_eq!(value, "outer value");
    assert_eq!(
        log.names(),
        [
            "outer body done",
            "shield done",
            "cleanup done",
            "outer scope returned"
        ]
    );
    assert_eq!(started.elapsed(), secs(8));
}

#[tokio::test(start_paused = true)]
async fn scope_dropped_because_its_task_was_cancelled_passes_the_tasks_reason_on() {
    let child = Probe::new();
    let log = Log::new();
    let mut cancel_line = 0;
    Scope::builder()
        .name("outer")
        .run(async |outer| {
            let log2 = log.clone();
            let child = child.clone();
            let runner = outer.spawn_named("runner", async move {
                let _ = Scope::builder()
                    .name("inner")
                    .run(async |scope| slow_scope_body(scope, &log2, &child).await)
                    .await;
                unreachable!("the inner scope never returns");
            });
            sleep(secs(1)).await;
            cancel_line = line!() + 1;
            let outcome = runner.cancel_and_wait("stop runner").await;
            assert_cancelled!(outcome);
            log.push("runner joined");
        })
        .await
        .unwrap();

    assert_eq!(
        log.names(),
        ["shield done", "cleanup done", "runner joined"]
    );
    assert_eq!(log.at("runner joined"), secs(8));
    let reason = child.reason();
    let chain: Vec<(CancelKind, Option<&str>)> =
        reason.chain().map(|r| (r.kind(), r.origin())).collect();
    assert_eq!(
        chain,
        [
            (CancelKind::ParentCancelled, Some("inner")),
            (CancelKind::ParentCancelled, Some("runner")),
            (CancelKind::Explicit, Some("outer")),
        ]
    );
    assert_eq!(reason.root().message(), Some("stop runner"));
    assert_eq!(reason.root().location().line(), cancel_line);
}

#[tokio::test(start_paused = true)]
async fn failures_of_a_dropped_scope_reach_the_enclosing_scope() {
    quiet_expected_panics();
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("{EXPECTED}: could not let go");
        }
    }

    let error = Scope::builder()
        .name("outer")
        .run(async |outer| {
            outer.spawn_named("runner", async {
                let dropped = tokio::time::timeout(
                    secs(1),
                    Scope::builder().name("inner").run(async |scope| {
                        scope.spawn_named("stubborn", async {
                            let _bomb = PanicOnDrop;
                            pending::<()>().await
                        });
                        scope.defer(async { Err::<(), _>("cleanup failed") });
                        pending::<()>().await
                    }),
                )
                .await;
                assert!(dropped.is_err());
            });
        })
        .await
        .unwrap_err();

    assert_eq!(error.failures().len(), 1, "{error}");
    let failure = &error.failures()[0];
    assert_eq!(failure.task(), Some("inner"));
    let inner = failure
        .error()
        .unwrap()
        .downcast_ref::<ScopeError>()
        .expect("the dropped scope's own ScopeError");
    assert_eq!(inner.scope(), Some("inner"));
    let kinds: Vec<String> = inner
        .failures()
        .iter()
        .map(|failure| match failure.kind() {
            FailureKind::Panic(payload) => format!("panic: {payload}"),
            FailureKind::CleanupError(error) => format!("cleanup error: {error}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            format!("panic: {EXPECTED}: could not let go"),
            "cleanup error: cleanup failed".to_owned()
        ]
    );
    assert_eq!(inner.reason().unwrap().kind(), CancelKind::Dropped);
}

#[tokio::test(start_paused = true)]
async fn cleanups_of_a_dropped_scope_still_run_last_registered_first() {
    let log = Log::new();
    Scope::run(async |outer| {
        let log = log.clone();
        outer.spawn(async move {
            let _ = tokio::time::timeout(
                secs(1),
                Scope::run(async |scope| {
                    for name in ["first", "second", "third"] {
                        let log = log.clone();
                        scope.defer(async move { log.push(name) });
                    }
                    pending::<()>().await
                }),
            )
            .await;
        });
    })
    .await
    .unwrap();
    assert_eq!(log.names(), ["third", "second", "first"]);
}

#[tokio::test(start_paused = true)]
async fn scope_future_dropped_before_its_first_poll_does_nothing() {
    let polled = common::Flag::new();
    let future = Scope::builder().name("never-started").run(async |_scope| {
        polled.set();
    });
    drop(future);
    tokio::task::yield_now().await;
    assert!(!polled.get());
    assert!(
        tethered::tree()
            .iter()
            .all(|entry| entry.name() != Some("never-started"))
    );
}

#[tokio::test(start_paused = true)]
async fn bare_tokio_spawn_dropped_scope_finishes_on_the_runtime_and_stays_in_the_tree() {
    const NAME: &str = "bare-dropped";
    let find = || {
        tethered::tree()
            .roots()
            .iter()
            .find(|entry| entry.name() == Some(NAME))
            .cloned()
    };
    let log = Log::new();
    let child = Probe::new();
    let log2 = log.clone();
    let child2 = child.clone();
    // No tethered task around the scope: nothing can wait for it.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            secs(1),
            Scope::builder().name(NAME).run(async |scope| {
                scope.spawn_named("child", child2.hang());
                let shield_log = log2.clone();
                scope.shield_named("flush", async move {
                    sleep(secs(2)).await;
                    shield_log.push("shield done");
                });
                let cleanup_log = log2.clone();
                scope.defer(async move {
                    sleep(secs(3)).await;
                    cleanup_log.push("cleanup done");
                });
                pending::<()>().await
            }),
        )
        .await;
        log2.push("spawned task done");
    })
    .await
    .unwrap();
    assert_eq!(log.now(), secs(1), "the bare task did not wait");
    assert_eq!(log.names(), ["spawned task done"]);

    // Still finishing its cancellation: orphaned, with the shield running.
    sleep(std::time::Duration::from_millis(500)).await;
    let entry = find().expect("the dropped scope is still in the tree");
    match entry.state() {
        EntryState::Orphaned(reason) => assert_eq!(reason.kind(), CancelKind::Dropped),
        other => panic!("unexpected state {other:?}"),
    }
    let children: Vec<Option<&str>> = entry.children().iter().map(|e| e.name()).collect();
    assert_eq!(
        children,
        [Some("flush")],
        "the child is gone, the shield is not"
    );
    assert_eq!(child.reason().cause().unwrap().kind(), CancelKind::Dropped);

    // Then running its cleanup.
    sleep(secs(1)).await;
    assert_eq!(log.at("shield done"), secs(2));
    let entry = find().expect("still in the tree while its cleanup runs");
    assert!(matches!(entry.state(), EntryState::InCleanup), "{entry}");

    // Gone once the cleanup has finished.
    sleep(secs(3)).await;
    assert_eq!(log.at("cleanup done"), secs(5));
    assert!(find().is_none(), "{}", tethered::tree());
}

#[tokio::test(start_paused = true)]
async fn body_of_a_dropped_scope_sees_why_it_is_dropped() {
    // A scope cancelled normally interrupts its body with the reason visible
    // from the body's `Drop` (see `scope.rs`); a dropped scope's body should
    // be able to tell as well.
    let body = Probe::new();
    let child = Probe::new();
    Scope::run(async |outer| {
        let body = body.clone();
        let child = child.clone();
        outer.spawn(async move {
            let _ = tokio::time::timeout(
                secs(1),
                Scope::builder().name("inner").run(async |scope| {
                    let _guard = body.guard();
                    scope.spawn(child.hang());
                    pending::<()>().await
                }),
            )
            .await;
        });
    })
    .await
    .unwrap();
    assert_eq!(child.reason().cause().unwrap().kind(), CancelKind::Dropped);
    let state = body.state();
    assert!(state.dropped_at.is_some());
    let reason = state
        .reason
        .expect("the body of a dropped scope is dropped without a cancel reason");
    assert_eq!(reason.kind(), CancelKind::Dropped);
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_dropping_the_body_of_a_dropped_scope_is_reported() {
    // A panic from the body's `Drop` is a failure when the scope is
    // cancelled normally (it replaces the cancellation); when the scope's
    // future is dropped, it must not be lost either.
    quiet_expected_panics();
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("{EXPECTED}: body could not let go");
        }
    }

    // Cancelled normally: reported.
    let error = Scope::run(async |scope| {
        let _bomb = PanicOnDrop;
        scope.cancel("stop");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1, "{error}");

    // Dropped: reported to the enclosing scope.
    let result = Scope::builder()
        .name("outer")
        .run(async |outer| {
            outer.spawn_named("runner", async {
                let _ = tokio::time::timeout(
                    secs(1),
                    Scope::builder().name("inner").run(async |_scope| {
                        let _bomb = PanicOnDrop;
                        pending::<()>().await
                    }),
                )
                .await;
            });
        })
        .await;
    let error = result.expect_err("the panic in the dropped body was lost");
    let messages: Vec<String> = error
        .failures()
        .iter()
        .map(|failure| failure.to_string())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("body could not let go")),
        "{messages:?}"
    );
}

#[test]
fn scope_stranded_by_a_runtime_shutdown_does_not_stay_in_the_tree() {
    // A scope whose runtime shuts down mid-flight cannot finish on that
    // runtime any more; it must not stay in the (process-wide) tree forever.
    const NAME: &str = "stranded-by-shutdown";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::spawn(async {
            let _ = Scope::builder()
                .name(NAME)
                .run(async |scope| {
                    scope.spawn_named("child", pending::<()>());
                    pending::<()>().await
                })
                .await;
        });
        sleep(secs(1)).await;
        assert!(
            tethered::tree().iter().any(|e| e.name() == Some(NAME)),
            "the scope is running"
        );
    });
    drop(runtime);
    let tree = tethered::tree();
    assert!(
        tree.iter().all(|entry| entry.name() != Some(NAME)),
        "a scope stranded by the runtime's shutdown is still in the tree:\n{tree}"
    );
}
