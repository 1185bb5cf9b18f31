//! Shields (work that hard cancellation does not reach, but that is still
//! joined) and deferred cleanups (LIFO, for every way a scope can end,
//! bounded, failures reported).

mod common;

use std::future::pending;

use common::{EXPECTED, Log, Probe, quiet_expected_panics, secs};
use tethered::{CancelKind, FailureKind, Scope, ScopeErrorKind};
use tokio::time::{Instant, sleep};

/// Registers a cleanup that logs `name` when it runs.
fn defer_log(scope: &Scope, log: &Log, name: &'static str) {
    let log = log.clone();
    scope.defer(async move { log.push(name) });
}

/// Panics (on purpose) with `what`; returns `()` as far as the types go.
fn explode(what: &str) {
    panic!("{EXPECTED}: {what}");
}

#[tokio::test(start_paused = true)]
async fn shield_keeps_running_when_its_scope_is_cancelled_and_the_scope_waits() {
    let shield = Probe::new();
    let started = Instant::now();
    let error = Scope::run(async |scope| {
        scope.shield_named("write", shield.sleep(secs(3)));
        sleep(secs(1)).await;
        scope.cancel("shutting down");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert!(error.is_cancelled());
    assert!(shield.finished(), "the shielded write finished");
    assert!(!shield.state().cancelled);
    assert_eq!(
        started.elapsed(),
        secs(3),
        "the scope waited for the shield"
    );
}

#[tokio::test(start_paused = true)]
async fn shield_outlives_its_cancelled_caller_and_the_caller_is_joined_after_it() {
    let log = Log::new();
    Scope::run(async |scope| {
        let log2 = log.clone();
        let caller = scope.spawn_named("caller", async move {
            let _ = Scope::run(async |inner| {
                let log3 = log2.clone();
                inner.shield(async move {
                    sleep(secs(3)).await;
                    log3.push("shield done");
                });
                pending::<()>().await
            })
            .await;
        });
        sleep(secs(1)).await;
        let outcome = caller.cancel_and_wait("caller no longer wanted").await;
        assert!(outcome.is_cancelled());
        log.push("caller joined");
    })
    .await
    .unwrap();
    assert_eq!(log.names(), ["shield done", "caller joined"]);
    assert_eq!(log.at("caller joined"), secs(3));
}

#[tokio::test(start_paused = true)]
async fn shield_sees_it_is_asked_to_stop_but_is_not_cancelled() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let error = Scope::builder()
        .name("svc")
        .run(async |scope| {
            scope.shield(async move {
                let before = tethered::is_stopping();
                let reason = tethered::stop_requested().await;
                // Finishes the protected work after the request.
                sleep(secs(1)).await;
                let current = tethered::current();
                let _ = tx.send((
                    before,
                    reason,
                    tethered::is_stopping(),
                    current.is_cancelled(),
                    current.cancel_reason(),
                ));
            });
            sleep(secs(1)).await;
            scope.cancel("shutdown");
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_cancelled());
    let (before, reason, after, cancelled, cancel_reason) = rx.await.unwrap();
    assert!(!before);
    assert!(after);
    assert!(!cancelled, "a shield is never hard-cancelled by its scope");
    assert!(cancel_reason.is_none());
    assert_eq!(reason.kind(), CancelKind::ParentCancelled);
    assert_eq!(reason.origin(), Some("svc"));
    assert_eq!(reason.cause().unwrap().message(), Some("shutdown"));
}

#[tokio::test(start_paused = true)]
async fn shield_protects_its_whole_subtree_from_hard_cancellation() {
    let grandchild = Probe::new();
    let started = Instant::now();
    let error = Scope::run(async |scope| {
        let grandchild = grandchild.clone();
        scope.shield(async move {
            Scope::run(async |inner| {
                inner.spawn(async move {
                    let _guard = grandchild.guard();
                    tethered::stop_requested().await;
                    sleep(secs(2)).await;
                    grandchild.mark_finished();
                });
            })
            .await
            .unwrap();
        });
        sleep(secs(1)).await;
        scope.cancel("outer cancel");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert!(error.is_cancelled());
    assert!(grandchild.finished(), "the grandchild ran to its end");
    let state = grandchild.state();
    assert!(!state.cancelled);
    assert!(state.stopping, "but it was asked to stop");
    assert_eq!(started.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn shield_panic_is_a_failure_that_cancels_its_siblings() {
    quiet_expected_panics();
    let sibling = Probe::new();
    let error = Scope::run(async |scope| {
        scope.spawn_named("sibling", sibling.hang());
        scope.shield_named("fragile", async {
            sleep(secs(1)).await;
            panic!("{EXPECTED}: shield broke");
        });
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.failures()[0].task(), Some("fragile"));
    assert_eq!(
        error.failures()[0].panic().unwrap().message(),
        format!("{EXPECTED}: shield broke")
    );
    assert_eq!(sibling.reason().kind(), CancelKind::SiblingFailed);
    assert_eq!(sibling.reason().origin(), Some("fragile"));
}

#[tokio::test(start_paused = true)]
async fn shield_keeps_running_when_a_sibling_fails() {
    let shield = Probe::new();
    let started = Instant::now();
    let error = Scope::run(async |scope| {
        scope.shield(shield.sleep(secs(4)));
        scope.spawn_fallible_named("failing", async {
            sleep(secs(1)).await;
            Err::<(), _>("broken")
        });
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    assert!(shield.finished());
    assert_eq!(started.elapsed(), secs(4));
}

#[tokio::test(start_paused = true)]
async fn scope_timeout_waits_for_shields() {
    let shield = Probe::new();
    let started = Instant::now();
    let error = Scope::builder()
        .timeout(secs(1))
        .run(async |scope| {
            scope.shield(shield.sleep(secs(3)));
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert!(shield.finished());
    assert_eq!(started.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn cleanups_run_last_registered_first_after_every_child_ended() {
    let log = Log::new();
    Scope::run(async |scope| {
        defer_log(scope, &log, "cleanup 1");
        let log2 = log.clone();
        scope.spawn(async move {
            sleep(secs(2)).await;
            log2.push("child done");
        });
        defer_log(scope, &log, "cleanup 2");
        defer_log(scope, &log, "cleanup 3");
        log.push("body returned");
    })
    .await
    .unwrap();
    assert_eq!(
        log.names(),
        [
            "body returned",
            "child done",
            "cleanup 3",
            "cleanup 2",
            "cleanup 1"
        ]
    );
    assert_eq!(log.at("cleanup 1"), secs(2));
}

#[tokio::test(start_paused = true)]
async fn cleanups_run_one_after_the_other() {
    let log = Log::new();
    Scope::run(async |scope| {
        for (name, delay) in [("slow first", 3), ("fast second", 1)] {
            let log = log.clone();
            scope.defer(async move {
                log.push(format!("{name} started"));
                sleep(secs(delay)).await;
                log.push(format!("{name} ended"));
            });
        }
    })
    .await
    .unwrap();
    assert_eq!(
        log.names(),
        [
            "fast second started",
            "fast second ended",
            "slow first started",
            "slow first ended"
        ]
    );
    assert_eq!(log.at("slow first ended"), secs(4));
}

#[tokio::test(start_paused = true)]
async fn cleanup_runs_when_the_scope_succeeds() {
    let log = Log::new();
    let value = Scope::run(async |scope| {
        defer_log(scope, &log, "cleanup");
        1
    })
    .await
    .unwrap();
    assert_eq!(value, 1);
    assert_eq!(log.names(), ["cleanup"]);
}

#[tokio::test(start_paused = true)]
async fn cleanup_runs_when_a_child_fails_and_sees_the_reason() {
    let log = Log::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let error = Scope::run(async |scope| {
        let log = log.clone();
        scope.defer(async move {
            let _ = tx.send(tethered::current().cancel_reason());
            log.push("cleanup");
        });
        scope.spawn_fallible_named("failing", async { Err::<(), _>("nope") });
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ScopeErrorKind::Failed);
    assert_eq!(log.names(), ["cleanup"]);
    let reason = rx
        .await
        .unwrap()
        .expect("the cleanup sees why the scope ended");
    assert_eq!(reason.kind(), CancelKind::SiblingFailed);
    assert_eq!(reason.origin(), Some("failing"));
}

#[tokio::test(start_paused = true)]
async fn cleanup_runs_when_the_body_panics() {
    quiet_expected_panics();
    let log = Log::new();
    let error = Scope::run(async |scope| {
        defer_log(scope, &log, "cleanup");
        sleep(secs(1)).await;
        panic!("{EXPECTED}: body panic");
    })
    .await
    .unwrap_err();
    assert!(error.failures()[0].panic().is_some());
    assert_eq!(log.names(), ["cleanup"]);
    assert_eq!(log.at("cleanup"), secs(1));
}

#[tokio::test(start_paused = true)]
async fn cleanup_runs_when_the_scope_times_out() {
    let log = Log::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let error = Scope::builder()
        .timeout(secs(2))
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                let _ = tx.send(tethered::current().cancel_reason());
                log.push("cleanup");
            });
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(log.at("cleanup"), secs(2));
    assert_eq!(rx.await.unwrap().unwrap().kind(), CancelKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn cleanup_runs_when_the_scope_is_cancelled() {
    let log = Log::new();
    let error = Scope::run(async |scope| {
        defer_log(scope, &log, "cleanup");
        sleep(secs(1)).await;
        scope.cancel("enough");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert!(error.is_cancelled());
    assert_eq!(log.at("cleanup"), secs(1));
}

#[tokio::test(start_paused = true)]
async fn cleanup_runs_when_the_scope_future_is_dropped() {
    let log = Log::new();
    Scope::run(async |outer| {
        let log = log.clone();
        outer
            .spawn(async move {
                let dropped = tokio::time::timeout(
                    secs(1),
                    Scope::run(async |scope| {
                        let log = log.clone();
                        scope.defer(async move {
                            sleep(secs(2)).await;
                            log.push("cleanup");
                        });
                        pending::<()>().await
                    }),
                )
                .await;
                assert!(dropped.is_err());
                log.push("scope future dropped");
            })
            .join()
            .await
            .unwrap();
    })
    .await
    .unwrap();
    assert_eq!(log.names(), ["scope future dropped", "cleanup"]);
    assert_eq!(log.at("cleanup"), secs(3));
}

#[tokio::test(start_paused = true)]
async fn failing_cleanup_is_reported_as_cleanup_error() {
    let log = Log::new();
    let mut defer_line = 0;
    let error = Scope::builder()
        .name("writer")
        .run(async |scope| {
            defer_log(scope, &log, "earlier cleanup");
            defer_line = line!() + 1;
            scope.defer(async { Err::<(), _>(std::io::Error::other("flush failed")) });
            "value that cannot be trusted"
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ScopeErrorKind::Failed);
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert!(failure.is_cleanup());
    match failure.kind() {
        FailureKind::CleanupError(error) => {
            let io = error.downcast_ref::<std::io::Error>().unwrap();
            assert_eq!(io.to_string(), "flush failed");
        }
        other => panic!("unexpected failure {other:?}"),
    }
    assert_eq!(failure.task(), Some("writer"));
    assert_eq!(failure.location().line(), defer_line);
    assert_eq!(failure.location().file(), file!());
    assert_eq!(
        log.names(),
        ["earlier cleanup"],
        "a failing cleanup stops no other"
    );
    // Cleanup failures do not cancel anything: there is no reason.
    assert!(error.reason().is_none());
}

#[tokio::test(start_paused = true)]
async fn panicking_cleanup_is_reported_as_cleanup_panic() {
    quiet_expected_panics();
    let log = Log::new();
    let error = Scope::run(async |scope| {
        defer_log(scope, &log, "earlier cleanup");
        scope.defer(async { explode("cleanup exploded") });
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert!(failure.is_cleanup());
    match failure.kind() {
        FailureKind::CleanupPanic(payload) => {
            assert_eq!(payload.message(), format!("{EXPECTED}: cleanup exploded"));
        }
        other => panic!("unexpected failure {other:?}"),
    }
    assert_eq!(log.names(), ["earlier cleanup"]);
}

#[tokio::test(start_paused = true)]
async fn timed_out_cleanup_is_dropped_at_the_limit_and_reported() {
    let log = Log::new();
    let stuck = Probe::new();
    let started = Instant::now();
    let error = Scope::builder()
        .cleanup_timeout(secs(2))
        .run(async |scope| {
            defer_log(scope, &log, "earlier cleanup");
            let stuck = stuck.clone();
            scope.defer(async move {
                let _guard = stuck.guard();
                sleep(secs(60)).await;
                stuck.mark_finished();
            });
        })
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), secs(2));
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert!(failure.is_cleanup());
    assert!(
        matches!(failure.kind(), FailureKind::CleanupTimedOut(limit) if *limit == secs(2)),
        "{failure:?}"
    );
    assert!(!stuck.finished());
    assert_eq!(stuck.dropped_at().unwrap() - started, secs(2));
    assert_eq!(log.at("earlier cleanup"), secs(2));
}

#[tokio::test(start_paused = true)]
async fn zero_cleanup_timeout_drops_each_cleanup_at_its_first_await() {
    let log = Log::new();
    let error = Scope::builder()
        .cleanup_timeout(secs(0))
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                log.push("started");
                sleep(secs(1)).await;
                log.push("ended");
            });
        })
        .await
        .unwrap_err();
    assert_eq!(log.names(), ["started"]);
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::CleanupTimedOut(limit) if limit.is_zero()
    ));
}

#[tokio::test(start_paused = true)]
async fn zero_cleanup_timeout_drops_a_cleanup_at_its_first_await_that_waits() {
    let log = Log::new();
    let error = Scope::builder()
        .cleanup_timeout(secs(0))
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                log.push("started");
                // Ready at once: no wait, so the cleanup goes on.
                std::future::ready(()).await;
                log.push("ran on");
                tokio::task::yield_now().await;
                log.push("ended");
            });
        })
        .await
        .unwrap_err();
    assert_eq!(log.names(), ["started", "ran on"]);
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::CleanupTimedOut(limit) if limit.is_zero()
    ));
}

#[tokio::test(start_paused = true)]
async fn a_cleanup_woken_after_its_deadline_is_not_polled_again() {
    // The cleanup's wake-up and its deadline fall in the same instant: the
    // deadline wins, whichever of the two the runtime sees first.
    let log = Log::new();
    let error = Scope::builder()
        .cleanup_timeout(secs(2))
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                sleep(secs(2)).await;
                log.push("ended");
            });
        })
        .await
        .unwrap_err();
    assert!(log.names().is_empty(), "{:?}", log.names());
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::CleanupTimedOut(limit) if *limit == secs(2)
    ));
}

#[test]
fn a_scope_polled_outside_a_tokio_runtime_fails_instead_of_skipping_its_cleanups() {
    // A minimal executor that is not tokio: poll until ready.
    let mut scope = std::pin::pin!(Scope::run(async |scope| {
        scope.defer(async {});
        5
    }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let ended = loop {
        if let std::task::Poll::Ready(ended) = scope.as_mut().poll(&mut cx) {
            break ended;
        }
    };
    let error = ended.unwrap_err();
    let failure = &error.failures()[0];
    assert!(failure.is_cleanup(), "{failure:?}");
    let message = failure.to_string();
    assert!(message.contains("tokio runtime"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn every_cleanup_failure_is_reported_in_the_order_the_cleanups_ran() {
    quiet_expected_panics();
    let error = Scope::builder()
        .cleanup_timeout(secs(1))
        .run(async |scope| {
            scope.defer(async { Err::<(), _>("registered first") });
            scope.defer(async { explode("registered second") });
            scope.defer(sleep(secs(5)));
        })
        .await
        .unwrap_err();
    let kinds: Vec<&str> = error
        .failures()
        .iter()
        .map(|failure| match failure.kind() {
            FailureKind::CleanupTimedOut(_) => "timed out",
            FailureKind::CleanupPanic(_) => "panic",
            FailureKind::CleanupError(_) => "error",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["timed out", "panic", "error"]);
    assert!(error.failures().iter().all(|f| f.is_cleanup()));
}

#[tokio::test(start_paused = true)]
async fn cleanup_is_not_interrupted_when_its_scope_is_cancelled_during_it() {
    let log = Log::new();
    let result = Scope::run(async |scope| {
        let handle = scope.handle();
        let log = log.clone();
        scope.defer(async move {
            handle.cancel("cancelled during cleanup");
            sleep(secs(1)).await;
            log.push("cleanup finished");
        });
        "value"
    })
    .await;
    assert_eq!(log.at("cleanup finished"), secs(1));
    // The body's value was there before the cancellation.
    assert_eq!(result.unwrap(), "value");
}

#[tokio::test(start_paused = true)]
async fn parent_cancel_while_a_child_scope_is_in_cleanup_lets_the_cleanup_complete() {
    let log = Log::new();
    let cleanup_probe = Probe::new();
    let started = Instant::now();
    let error = Scope::builder()
        .name("parent")
        .run(async |parent| {
            let log2 = log.clone();
            let cleanup_probe = cleanup_probe.clone();
            parent.spawn_named("runner", async move {
                let result = Scope::builder()
                    .name("child")
                    .run(async |child| {
                        let log3 = log2.clone();
                        child.defer(async move {
                            let _guard = cleanup_probe.guard();
                            log3.push("cleanup started");
                            sleep(secs(5)).await;
                            log3.push("cleanup finished");
                        });
                        sleep(secs(1)).await;
                        log2.push("child body returned");
                    })
                    .await;
                log2.push(format!("child scope returned ok={}", result.is_ok()));
            });
            sleep(secs(2)).await;
            parent.cancel("parent shutting down");
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert_eq!(
        log.names(),
        ["child body returned", "cleanup started", "cleanup finished"],
        "the runner was cancelled during the cleanup, so it never saw the scope return"
    );
    assert_eq!(log.at("cleanup finished"), secs(6));
    assert_eq!(
        started.elapsed(),
        secs(6),
        "the parent waited for the cleanup"
    );
    let state = cleanup_probe.state();
    assert!(!state.cancelled, "the cleanup was not hard-cancelled");
    assert!(state.stopping, "the cleanup was asked to stop");
    let reason = state.reason.expect("the cleanup sees its scope's reason");
    assert_eq!(reason.root().message(), Some("parent shutting down"));
}

#[tokio::test(start_paused = true)]
async fn shield_started_in_an_already_cancelled_scope_still_runs_and_is_joined() {
    // Unlike a task (cancelled at once, never polled), a shield started
    // after its scope was cancelled runs: it is work that must happen.
    let shield = Probe::new();
    let started = Instant::now();
    let error = Scope::run(async |scope| {
        scope.cancel("closing");
        scope.shield(shield.sleep(secs(1)));
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert!(error.is_cancelled());
    assert!(shield.finished());
    assert!(shield.state().stopping, "it is asked to stop");
    assert_eq!(started.elapsed(), secs(1));
}

#[tokio::test(start_paused = true)]
async fn scope_timeout_counts_cleanups_but_does_not_interrupt_them() {
    let log = Log::new();
    let error = Scope::builder()
        .timeout(secs(2))
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                sleep(secs(3)).await;
                log.push(format!(
                    "cleanup done, stopping={}",
                    tethered::is_stopping()
                ));
            });
            sleep(secs(1)).await;
            "value"
        })
        .await
        .unwrap_err();
    assert!(
        error.is_timeout(),
        "the scope had not ended by its deadline"
    );
    assert_eq!(log.names(), ["cleanup done, stopping=true"]);
    assert_eq!(log.at("cleanup done, stopping=true"), secs(4));
}

#[tokio::test(start_paused = true)]
async fn cleanups_of_a_scope_inside_a_shield_run_when_the_outer_scope_is_cancelled() {
    let log = Log::new();
    let error = Scope::run(async |scope| {
        let log = log.clone();
        scope.shield(async move {
            Scope::run(async |inner| {
                defer_log(inner, &log, "inner cleanup");
                sleep(secs(2)).await;
                log.push("inner body done");
            })
            .await
            .unwrap();
        });
        sleep(secs(1)).await;
        scope.cancel("outer cancelled");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert!(error.is_cancelled());
    assert_eq!(log.names(), ["inner body done", "inner cleanup"]);
}

#[tokio::test(start_paused = true)]
async fn on_exit_cancel_only_asks_shields_to_stop_and_waits_for_them() {
    let shield = Probe::new();
    let helper = Probe::new();
    let started = Instant::now();
    let value = Scope::builder()
        .on_exit(tethered::OnExit::Cancel)
        .run(async |scope| {
            scope.spawn(helper.hang());
            scope.shield(shield.sleep(secs(2)));
            "done"
        })
        .await
        .unwrap();
    assert_eq!(value, "done");
    assert_eq!(helper.reason().kind(), CancelKind::ScopeExit);
    assert!(shield.finished());
    assert!(shield.state().stopping);
    assert_eq!(started.elapsed(), secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_scope_dropped_inside_a_timed_out_cleanup_is_still_joined_by_the_scope() {
    // The cleanup runs a nested scope and is dropped at its timeout; the
    // nested scope hands its work on, as any dropped scope does, and the
    // scope that owns the cleanup must not return before that work is done.
    let log = Log::new();
    let result = Scope::builder()
        .cleanup_timeout(secs(1))
        .run(async |scope| {
            let log = log.clone();
            scope.defer(async move {
                let _ = Scope::run(async |inner| {
                    let log = log.clone();
                    inner.shield(async move {
                        sleep(secs(5)).await;
                        log.push("inner shield done");
                    });
                    pending::<()>().await
                })
                .await;
            });
        })
        .await;
    log.push("scope returned");
    let error = result.unwrap_err();
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::CleanupTimedOut(_)
    ));
    assert_eq!(
        log.names(),
        ["inner shield done", "scope returned"],
        "the scope returned before the work of a scope dropped in its cleanup"
    );
    assert_eq!(log.at("scope returned"), secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_scope_dropped_by_a_cleanup_itself_is_still_joined_by_the_scope() {
    // Same, with the cleanup dropping the nested scope itself (timeout).
    let log = Log::new();
    Scope::run(async |scope| {
        let log = log.clone();
        scope.defer(async move {
            let _ = tokio::time::timeout(
                secs(1),
                Scope::run(async |inner| {
                    let log = log.clone();
                    inner.shield(async move {
                        sleep(secs(5)).await;
                        log.push("inner shield done");
                    });
                    pending::<()>().await
                }),
            )
            .await;
            log.push("cleanup done");
        });
    })
    .await
    .unwrap();
    log.push("scope returned");
    assert_eq!(
        log.names(),
        ["cleanup done", "inner shield done", "scope returned"],
        "the scope returned before the work of a scope dropped in its cleanup"
    );
    assert_eq!(log.at("scope returned"), secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_cleanup_that_never_returns_is_accepted_and_ends_at_its_timeout() {
    let error = Scope::builder()
        .cleanup_timeout(secs(2))
        .run(async |scope| {
            scope.defer(async {
                loop {
                    sleep(secs(1)).await;
                }
            });
        })
        .await
        .unwrap_err();
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::CleanupTimedOut(limit) if *limit == secs(2)
    ));
}
