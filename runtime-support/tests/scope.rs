//! Scope semantics: join-all, group failure, panics, exit behaviour,
//! timeouts, nesting, and spawning into closing or closed scopes.

mod common;

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;
use tethered::testing::assert_panicked;

use common::{EXPECTED, ExpectedPayload, Flag, Log, Probe, ms, quiet_expected_panics, secs};
use tethered::{CancelKind, FailureKind, OnExit, Scope, ScopeError, ScopeErrorKind};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn scope_returns_body_value_only_after_every_child_finished() {
    let log = Log::new();
    let value = Scope::run(async |scope| {
        for n in 1..=3u64 {
            let log = log.clone();
            scope.spawn(async move {
                sleep(secs(n)).await;
                log.push(format!("child {n} done"));
            });
        }
        log.push("body returned");
        "body value"
    })
    .await
    .unwrap();
    log.push("scope returned");

    assert_eq!(value, "body value");
    assert_eq!(
        log.names(),
        [
            "body returned",
            "child 1 done",
            "child 2 done",
            "child 3 done",
            "scope returned"
        ]
    );
    assert_eq!(log.at("body returned"), secs(0));
    assert_eq!(log.at("scope returned"), secs(3));
}

#[tokio::test(start_paused = true)]
async fn join_returns_each_childs_value_in_any_order() {
    let values = Scope::run(async |scope| {
        let slow = scope.spawn(async {
            sleep(secs(2)).await;
            "slow"
        });
        let fast = scope.spawn(async {
            sleep(secs(1)).await;
            "fast"
        });
        let slow = slow.join().await.completed();
        let fast = fast.join().await.completed();
        (slow, fast)
    })
    .await
    .unwrap();
    assert_eq!(values, (Some("slow"), Some("fast")));
}

#[tokio::test(start_paused = true)]
async fn first_failure_cancels_siblings_and_body_with_sibling_failed_naming_it() {
    let slow = Probe::new();
    let body = Probe::new();
    let mut spawn_line = 0;
    let started = Instant::now();
    let error = Scope::builder()
        .name("group")
        .run(async |scope| {
            let _body_guard = body.guard();
            scope.spawn_named("slow", slow.hang());
            spawn_line = line!() + 1;
            scope.spawn_fallible_named("broken", async {
                sleep(secs(1)).await;
                Err::<(), _>("no route")
            });
            pending::<()>().await
        })
        .await
        .unwrap_err();

    assert_eq!(started.elapsed(), secs(1));
    assert_eq!(error.kind(), ScopeErrorKind::Failed);
    assert_eq!(error.scope(), Some("group"));
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert_eq!(failure.task(), Some("broken"));
    assert_eq!(failure.location().line(), spawn_line);
    assert_eq!(failure.location().file(), file!());
    assert_eq!(
        failure.error().unwrap().downcast_ref::<&str>(),
        Some(&"no route")
    );
    assert_eq!(error.downcast_ref::<&str>(), Some(&"no route"));

    let reason = error.reason().expect("the failure cancelled the scope");
    assert_eq!(reason.kind(), CancelKind::SiblingFailed);
    assert_eq!(reason.origin(), Some("broken"));
    assert!(
        reason.message().unwrap().contains("broken")
            && reason.message().unwrap().contains("no route"),
        "message names the failed task and its error: {reason}"
    );
    assert_eq!(reason.location().line(), spawn_line);

    // The sibling received the very same reason, unchanged.
    let sibling = slow.reason();
    assert!(sibling.same_as(reason), "{sibling} vs {reason}");
    // The body was interrupted as the scope.
    assert_eq!(body.reason().kind(), CancelKind::SiblingFailed);
    assert_eq!(body.dropped_at().unwrap() - started, secs(1));
}

#[tokio::test(start_paused = true)]
async fn failed_child_error_keeps_its_type_in_the_scope_error() {
    #[derive(Debug)]
    struct Refused(u16);
    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "refused with {}", self.0)
        }
    }

    let error = Scope::run(async |scope| {
        scope.spawn_fallible(async { Err::<u8, _>(Refused(503)) });
    })
    .await
    .unwrap_err();

    let refused = error.failures()[0]
        .error()
        .unwrap()
        .downcast_ref::<Refused>()
        .unwrap();
    assert_eq!(refused.0, 503);
    assert!(error.failures()[0].error().unwrap().is::<Refused>());
    assert!(matches!(error.failures()[0].kind(), FailureKind::Error(_)));
    assert!(error.to_string().contains("refused with 503"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn body_joining_a_failing_child_is_interrupted_before_it_sees_the_outcome() {
    let after_join = Flag::new();
    let error = Scope::run(async |scope| {
        let handle = scope.spawn_fallible(async {
            sleep(secs(1)).await;
            Err::<(), _>("broken")
        });
        let _ = handle.join().await;
        after_join.set();
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.reason().unwrap().kind(), CancelKind::SiblingFailed);
    assert!(
        !after_join.get(),
        "the failure cancels the body, so its join never returns"
    );
}

#[tokio::test(start_paused = true)]
async fn every_later_failure_is_kept_in_order() {
    quiet_expected_panics();

    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("{EXPECTED}: dropper could not let go");
        }
    }

    let error = Scope::run(async |scope| {
        scope.defer(async { Err::<(), _>("cleanup could not flush") });
        scope.shield_named("guard", async {
            sleep(secs(2)).await;
            panic!("{EXPECTED}: guard gave up");
        });
        scope.spawn_named("dropper", async {
            let _bomb = PanicOnDrop;
            pending::<()>().await
        });
        scope.spawn_fallible_named("first", async {
            sleep(secs(1)).await;
            Err::<(), _>("first failure")
        });
        pending::<()>().await
    })
    .await
    .unwrap_err();

    let summary: Vec<(Option<&str>, String)> = error
        .failures()
        .iter()
        .map(|failure| {
            let what = match failure.kind() {
                FailureKind::Error(error) => format!("error: {error}"),
                FailureKind::Panic(payload) => format!("panic: {payload}"),
                FailureKind::CleanupError(error) => format!("cleanup error: {error}"),
                other => format!("{other:?}"),
            };
            (failure.task(), what)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some("first"), "error: first failure".to_owned()),
            (
                Some("dropper"),
                format!("panic: {EXPECTED}: dropper could not let go")
            ),
            (Some("guard"), format!("panic: {EXPECTED}: guard gave up")),
            (None, "cleanup error: cleanup could not flush".to_owned()),
        ]
    );
    // Only the first failure cancelled the scope.
    assert_eq!(error.reason().unwrap().origin(), Some("first"));
    assert!(error.failures()[3].is_cleanup());
}

#[tokio::test(start_paused = true)]
async fn child_panic_is_captured_with_its_message() {
    quiet_expected_panics();
    // A panic interrupts the body, so the outcome is observed from a shield,
    // which the failure only asks to stop.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let error = Scope::run(async |scope| {
        let handle = scope
            .handle()
            .try_spawn_named("reactor", async { panic!("{EXPECTED}: disk on fire") })
            .unwrap();
        scope.shield(async move {
            let _ = tx.send(handle.join().await);
        });
    })
    .await
    .unwrap_err();

    let seen_payload = assert_panicked!(rx.await.unwrap());
    assert_eq!(seen_payload.message(), format!("{EXPECTED}: disk on fire"));
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert_eq!(failure.task(), Some("reactor"));
    assert!(matches!(failure.kind(), FailureKind::Panic(_)));
    let payload = failure.panic().unwrap();
    assert_eq!(payload.message(), format!("{EXPECTED}: disk on fire"));
    // The outcome and the scope error share the payload: taking it from
    // one takes it from both.
    let original = seen_payload.take().expect("payload still there");
    assert_eq!(
        original.downcast_ref::<String>().map(String::as_str),
        Some(format!("{EXPECTED}: disk on fire").as_str())
    );
    assert!(payload.take().is_none());
}

#[tokio::test(start_paused = true)]
async fn child_panic_payload_can_be_taken_and_downcast() {
    quiet_expected_panics();
    let error = Scope::run(async |scope| {
        scope.spawn(async { std::panic::panic_any(ExpectedPayload(42)) });
    })
    .await
    .unwrap_err();
    let payload = error.failures()[0].panic().unwrap();
    assert_eq!(payload.message(), "<panic payload that is not a string>");
    let original = payload.take().expect("payload not taken yet");
    assert_eq!(
        *original.downcast::<ExpectedPayload>().unwrap(),
        ExpectedPayload(42)
    );
    assert!(payload.take().is_none(), "a payload is handed out once");
}

#[tokio::test(start_paused = true)]
async fn body_panic_is_reported_and_cancels_children() {
    quiet_expected_panics();
    let child = Probe::new();
    let run_line = line!() + 1;
    let error = Scope::run(async |scope| {
        scope.spawn_named("child", child.hang());
        sleep(secs(1)).await;
        panic!("{EXPECTED}: body blew up");
    })
    .await
    .unwrap_err();

    assert_eq!(error.kind(), ScopeErrorKind::Failed);
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert_eq!(failure.task(), None, "the body of an unnamed scope");
    assert_eq!(
        failure.panic().unwrap().message(),
        format!("{EXPECTED}: body blew up")
    );
    // The failure is located where `run` was called.
    assert_eq!(failure.location().file(), file!());
    assert_eq!(failure.location().line(), run_line);
    assert_eq!(error.location().line(), run_line);
    let reason = child.reason();
    assert_eq!(reason.kind(), CancelKind::SiblingFailed);
    assert!(reason.message().unwrap().contains(EXPECTED), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn on_exit_join_waits_for_children_still_running() {
    let child = Probe::new();
    let started = Instant::now();
    let value = Scope::builder()
        .on_exit(OnExit::Join)
        .run(async |scope| {
            scope.spawn(child.sleep(secs(5)));
            7
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert!(child.finished());
    assert_eq!(started.elapsed(), secs(5));
    assert!(
        child.state().reason.is_none(),
        "the child was not cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn on_exit_cancel_cancels_remaining_children_with_scope_exit() {
    let helper = Probe::new();
    let done = Probe::new();
    let started = Instant::now();
    let value = Scope::builder()
        .name("with-helper")
        .on_exit(OnExit::Cancel)
        .run(async |scope| {
            scope.spawn_named("helper", helper.hang());
            let finished = scope.spawn(done.sleep(secs(1)));
            finished.join().await.unwrap();
            sleep(secs(1)).await;
            8
        })
        .await
        .unwrap();
    assert_eq!(value, 8);
    assert_eq!(started.elapsed(), secs(2));
    let reason = helper.reason();
    assert_eq!(reason.kind(), CancelKind::ScopeExit);
    assert_eq!(helper.dropped_at().unwrap() - started, secs(2));
    assert!(done.finished());
    assert!(done.state().reason.is_none());
}

#[tokio::test(start_paused = true)]
async fn on_exit_cancel_does_not_apply_when_the_body_fails() {
    quiet_expected_panics();
    let helper = Probe::new();
    let error = Scope::builder()
        .on_exit(OnExit::Cancel)
        .run(async |scope| {
            scope.spawn_named("helper", helper.hang());
            sleep(secs(1)).await;
            panic!("{EXPECTED}: body failed");
        })
        .await
        .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    // The failure, not the exit, is why the helper was cancelled.
    assert_eq!(helper.reason().kind(), CancelKind::SiblingFailed);
}

#[tokio::test(start_paused = true)]
async fn timeout_fails_the_scope_with_a_timeout_reason() {
    let child = Probe::new();
    let body = Probe::new();
    let started = Instant::now();
    let error = Scope::builder()
        .name("fetch")
        .timeout(secs(5))
        .run(async |scope| {
            let _guard = body.guard();
            scope.spawn_named("download", child.hang());
            sleep(secs(60)).await;
        })
        .await
        .unwrap_err();

    assert_eq!(started.elapsed(), secs(5));
    assert!(error.is_timeout());
    assert_eq!(error.kind(), ScopeErrorKind::TimedOut);
    assert!(error.failures().is_empty());
    let reason = error.reason().unwrap();
    assert_eq!(reason.kind(), CancelKind::Timeout);
    assert!(reason.message().unwrap().contains("5s"), "{reason}");
    assert_eq!(reason.location(), error.location());

    let inherited = child.reason();
    assert_eq!(inherited.kind(), CancelKind::ParentCancelled);
    assert_eq!(inherited.origin(), Some("fetch"));
    assert!(inherited.cause().unwrap().same_as(reason));
    assert_eq!(body.reason().kind(), CancelKind::Timeout);
    assert!(error.to_string().contains("timed out"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn scope_finishing_before_its_timeout_is_ok_and_cancels_nothing() {
    let child = Probe::new();
    let started = Instant::now();
    let value = Scope::builder()
        .timeout(secs(5))
        .run(async |scope| {
            scope.spawn(child.sleep(secs(2)));
            "in time"
        })
        .await
        .unwrap();
    assert_eq!(value, "in time");
    assert_eq!(started.elapsed(), secs(2));
    assert!(child.finished());
    assert!(child.state().reason.is_none());
    // The deadline is gone with the scope: nothing fires later.
    sleep(secs(10)).await;
    assert!(child.state().reason.is_none());
}

#[tokio::test(start_paused = true)]
async fn timeout_passing_while_joining_children_fails_the_scope() {
    let child = Probe::new();
    let started = Instant::now();
    let error = Scope::builder()
        .timeout(secs(3))
        .run(async |scope| {
            scope.spawn(child.hang());
            "body finished early"
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(started.elapsed(), secs(3));
    assert_eq!(child.reason().root().kind(), CancelKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_never_polls_the_body() {
    let polled = Flag::new();
    let started = Instant::now();
    let error = Scope::builder()
        .timeout(secs(0))
        .run(async |_scope| {
            polled.set();
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(!polled.get(), "the body of a zero-timeout scope was polled");
    assert_eq!(started.elapsed(), secs(0));
}

#[test]
fn zero_timeout_never_polls_the_body_on_a_running_clock() {
    // The same promise without paused time: the deadline has passed however
    // far the clock is into its current millisecond.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut polled_runs = 0;
    let mut ok_runs = 0;
    for _ in 0..20 {
        let polled = Flag::new();
        let result = runtime.block_on(async {
            // Move the clock off a millisecond boundary.
            tokio::time::sleep(ms(1)).await;
            std::thread::sleep(std::time::Duration::from_micros(300));
            Scope::builder()
                .timeout(secs(0))
                .run(async |_scope| polled.set())
                .await
        });
        polled_runs += usize::from(polled.get());
        ok_runs += usize::from(result.is_ok());
    }
    assert_eq!(
        (polled_runs, ok_runs),
        (0, 0),
        "zero-timeout scope on a running clock: the body was polled in {polled_runs} of 20 runs \
         and the scope returned Ok (no timeout) in {ok_runs} of 20 runs"
    );
}

#[tokio::test(start_paused = true)]
async fn nested_scopes_three_deep_join_from_the_inside_out() {
    let log = Log::new();
    let value = Scope::builder()
        .name("outer")
        .run(async |outer| {
            let log1 = log.clone();
            let middle = outer.spawn_named("middle-runner", async move {
                let log2 = log1.clone();
                let value = Scope::builder()
                    .name("middle")
                    .run(async |middle| {
                        let log3 = log2.clone();
                        let inner = middle.spawn_named("inner-runner", async move {
                            let log4 = log3.clone();
                            let value = Scope::builder()
                                .name("inner")
                                .run(async |inner| {
                                    let leaf = inner.spawn(async move {
                                        sleep(secs(3)).await;
                                        log4.push("leaf done");
                                        1
                                    });
                                    leaf.join().await.unwrap() + 10
                                })
                                .await
                                .unwrap();
                            log3.push("inner scope done");
                            value
                        });
                        inner.join().await.unwrap() + 100
                    })
                    .await
                    .unwrap();
                log2.push("middle scope done");
                value
            });
            middle.join().await.unwrap() + 1000
        })
        .await
        .unwrap();
    log.push("outer scope done");

    assert_eq!(value, 1111);
    assert_eq!(
        log.names(),
        [
            "leaf done",
            "inner scope done",
            "middle scope done",
            "outer scope done"
        ]
    );
    assert_eq!(log.at("outer scope done"), secs(3));
}

#[tokio::test(start_paused = true)]
async fn nested_scope_errors_keep_their_shape_three_deep() {
    let error = Scope::builder()
        .name("outer")
        .run(async |outer| {
            outer.spawn_fallible_named("middle-runner", async {
                Scope::builder()
                    .name("middle")
                    .run(async |middle| {
                        middle.spawn_fallible_named("inner-runner", async {
                            Scope::builder()
                                .name("inner")
                                .run(async |inner| {
                                    inner.spawn_fallible_named("leaf", async {
                                        sleep(secs(1)).await;
                                        Err::<(), _>("deep failure")
                                    });
                                })
                                .await
                        });
                    })
                    .await
            });
        })
        .await
        .unwrap_err();

    assert_eq!(error.scope(), Some("outer"));
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.failures()[0].task(), Some("middle-runner"));
    let middle = error.failures()[0]
        .error()
        .unwrap()
        .downcast_ref::<ScopeError>()
        .expect("the middle scope's error, not flattened");
    assert_eq!(middle.scope(), Some("middle"));
    assert_eq!(middle.failures().len(), 1);
    assert_eq!(middle.failures()[0].task(), Some("inner-runner"));
    let inner = middle.failures()[0]
        .error()
        .unwrap()
        .downcast_ref::<ScopeError>()
        .expect("the inner scope's error");
    assert_eq!(inner.scope(), Some("inner"));
    assert_eq!(inner.failures()[0].task(), Some("leaf"));
    assert_eq!(inner.downcast_ref::<&str>(), Some(&"deep failure"));

    // `std::error::Error::source` walks the same chain.
    let mut depth = 0;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        depth += 1;
        source = current.source();
    }
    // outer -> middle's TaskError -> middle -> inner's TaskError -> inner -> leaf's TaskError
    assert_eq!(depth, 6);
}

#[tokio::test(start_paused = true)]
async fn spawning_into_a_cancelled_scope_gives_a_cancelled_task_that_never_runs() {
    let late = Probe::new();
    let (reason, body_value) = Scope::builder()
        .name("closing")
        .run(async |scope| {
            scope.cancel("closing down");
            let guard = late.guard();
            let probe = late.clone();
            let handle = scope.spawn_named("late", async move {
                let _guard = guard;
                probe.mark_polled();
            });
            (handle.cancel_reason(), "returned before any await")
        })
        .await
        .expect("a scope cancelled by its own body keeps the body's value");

    assert_eq!(body_value, "returned before any await");
    let reason = reason.expect("the task is born cancelled");
    assert_eq!(reason.kind(), CancelKind::ParentCancelled);
    assert_eq!(reason.origin(), Some("closing"));
    let cause = reason.cause().unwrap();
    assert_eq!(cause.kind(), CancelKind::Explicit);
    assert_eq!(cause.message(), Some("closing down"));
    assert!(!late.polled(), "a task spawned into a cancelled scope ran");
    assert!(late.dropped(), "its future was dropped");
}

#[tokio::test(start_paused = true)]
async fn spawning_into_a_scope_cancelled_by_a_failure_is_refused() {
    let late = Probe::new();
    let error = Scope::run(async |scope| {
        let handle = scope.handle();
        scope.spawn_fallible_named("failing", async { Err::<(), _>("bad") });
        let probe = late.clone();
        scope.shield(async move {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            let guard = probe.guard();
            let probe2 = probe.clone();
            let spawned = handle.try_spawn(async move {
                let _guard = guard;
                probe2.mark_polled();
            });
            assert!(spawned.is_err(), "a failed scope still took a child");
        });
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1, "{error}");
    assert!(late.dropped());
    assert!(!late.polled());
}

#[tokio::test(start_paused = true)]
async fn scope_handle_try_spawn_while_joining_adds_a_sibling_that_is_joined() {
    let log = Log::new();
    let started = Instant::now();
    Scope::run(async |scope| {
        let handle = scope.handle();
        let log = log.clone();
        scope.spawn(async move {
            sleep(secs(1)).await;
            let log2 = log.clone();
            let sibling = handle.try_spawn_named("late-sibling", async move {
                sleep(secs(2)).await;
                log2.push("sibling done");
            });
            assert!(sibling.is_ok(), "a joining scope refused a child");
            log.push("spawner done");
        });
        // The body returns at once: the scope is joining from here on.
    })
    .await
    .unwrap();
    assert_eq!(log.names(), ["spawner done", "sibling done"]);
    assert_eq!(log.at("sibling done"), secs(3));
    assert_eq!(started.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn scope_handle_try_spawn_after_close_errors_and_never_polls() {
    let handle = Scope::builder()
        .name("finished")
        .run(async |scope| scope.handle())
        .await
        .unwrap();
    assert!(handle.is_closed());

    let probe = Probe::new();
    let guard = probe.guard();
    let polled = probe.clone();
    let error = handle
        .try_spawn(async move {
            let _guard = guard;
            polled.mark_polled();
        })
        .unwrap_err();
    assert!(probe.dropped(), "the future was dropped");
    tokio::task::yield_now().await;
    assert!(!probe.polled(), "the future was polled");
    assert!(
        error.to_string().contains("finished"),
        "the error names the scope: {error}"
    );
    assert!(
        tethered::tree()
            .iter()
            .all(|e| e.name() != Some("finished"))
    );
}

#[tokio::test(start_paused = true)]
async fn scope_handle_try_spawn_after_cancel_errors_and_never_polls() {
    let probe = Probe::new();
    let result = Scope::run(async |scope| {
        let handle = scope.handle();
        assert!(!handle.is_closed());
        handle.cancel("no more work");
        assert!(handle.is_closed(), "a cancelled scope is closing");
        let guard = probe.guard();
        let polled = probe.clone();
        handle
            .try_spawn_named("refused", async move {
                let _guard = guard;
                polled.mark_polled();
            })
            .map(drop)
    })
    .await
    .unwrap();
    assert!(result.is_err());
    assert!(probe.dropped());
    assert!(!probe.polled());
}

#[tokio::test(start_paused = true)]
async fn scope_cancel_interrupts_the_body_without_a_failure() {
    let child = Probe::new();
    let body = Probe::new();
    let mut cancel_line = 0;
    let error = Scope::builder()
        .name("searcher")
        .run(async |scope| {
            let _guard = body.guard();
            scope.spawn(child.hang());
            sleep(secs(1)).await;
            cancel_line = line!() + 1;
            scope.cancel("found it");
            sleep(secs(100)).await;
            unreachable!("the body is interrupted");
        })
        .await
        .unwrap_err();
    assert!(error.is_cancelled());
    assert!(error.failures().is_empty());
    assert_eq!(error.reason().unwrap().message(), Some("found it"));
    assert_eq!(error.reason().unwrap().location().line(), cancel_line);
    assert_eq!(body.reason().message(), Some("found it"));
    assert_eq!(child.reason().cause().unwrap().message(), Some("found it"));
}

#[tokio::test(start_paused = true)]
async fn scope_cancel_after_the_body_value_keeps_the_value() {
    let child = Probe::new();
    let value = Scope::run(async |scope| {
        scope.spawn(child.hang());
        sleep(secs(1)).await;
        scope.cancel("have an answer");
        "answer"
    })
    .await
    .unwrap();
    assert_eq!(value, "answer");
    assert_eq!(
        child.reason().cause().unwrap().message(),
        Some("have an answer")
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_handle_neither_cancels_nor_detaches_the_task() {
    let child = Probe::new();
    let started = Instant::now();
    Scope::run(async |scope| {
        drop(scope.spawn(child.sleep(secs(2))));
    })
    .await
    .unwrap();
    assert!(child.finished());
    assert!(child.state().reason.is_none());
    assert_eq!(started.elapsed(), secs(2));
}

#[tokio::test(start_paused = true)]
async fn try_spawn_from_a_cleanup_is_refused_because_the_scope_is_closed() {
    let refused = Probe::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    Scope::run(async |scope| {
        let handle = scope.handle();
        let probe = refused.clone();
        scope.defer(async move {
            let guard = probe.guard();
            let polled = probe.clone();
            let spawned = handle.try_spawn(async move {
                let _guard = guard;
                polled.mark_polled();
            });
            let _ = tx.send((spawned.is_err(), handle.is_closed()));
        });
    })
    .await
    .unwrap();
    assert_eq!(rx.await.unwrap(), (true, true));
    assert!(refused.dropped());
    assert!(!refused.polled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_on_many_threads_are_all_kept() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    for iteration in 0..200usize {
        let failed = Arc::new(AtomicUsize::new(0));
        let error = Scope::run(async |scope| {
            for n in 0..16usize {
                let failed = failed.clone();
                scope.spawn_fallible_named(format!("t{n}"), async move {
                    for _ in 0..(n + iteration) % 3 {
                        tokio::task::yield_now().await;
                    }
                    failed.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(n)
                });
            }
        })
        .await
        .unwrap_err();
        let failed = failed.load(Ordering::SeqCst);
        assert!(failed >= 1);
        assert_eq!(
            error.failures().len(),
            failed,
            "iteration {iteration}: every failure that happened is reported"
        );
        let mut names: Vec<_> = error.failures().iter().map(|f| f.task()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), failed, "each failure once");
        assert_eq!(
            error.reason().unwrap().origin(),
            error.failures()[0].task(),
            "iteration {iteration}: the reason names the first failure"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_spawn_racing_the_scope_closing_never_leaves_a_task_behind() {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Stamps the sequence number of its drop.
    struct Stamp(Arc<AtomicU64>, Arc<AtomicU64>);
    impl Drop for Stamp {
        fn drop(&mut self) {
            let at = self.1.fetch_add(1, Ordering::SeqCst);
            self.0.store(at, Ordering::SeqCst);
        }
    }

    let (mut accepted, mut refused) = (0, 0);
    for iteration in 0..400u64 {
        // A task outside the scope tries to spawn into it once, at a moment
        // swept across iterations over the scope's closing.
        let sequence = Arc::new(AtomicU64::new(1));
        let slot = Arc::new(AtomicU64::new(0));
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel::<tethered::ScopeHandle>();
        let stamp = Stamp(slot.clone(), sequence.clone());
        let spawner = tokio::spawn(async move {
            let handle = handle_rx.await.unwrap();
            let until = std::time::Instant::now()
                + std::time::Duration::from_nanos((iteration % 100) * 500);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            handle
                .try_spawn(async move {
                    let _stamp = stamp;
                    tokio::task::yield_now().await;
                })
                .is_ok()
        });
        Scope::run(async |scope| {
            let _ = handle_tx.send(scope.handle());
            scope.spawn(async move {
                for _ in 0..(iteration % 3) {
                    tokio::task::yield_now().await;
                }
            });
        })
        .await
        .unwrap();
        let returned_at = sequence.fetch_add(1, Ordering::SeqCst);
        let was_accepted = spawner.await.unwrap();
        let dropped_at = slot.load(Ordering::SeqCst);
        assert_ne!(dropped_at, 0, "the future was dropped either way");
        if was_accepted {
            accepted += 1;
            assert!(
                dropped_at < returned_at,
                "iteration {iteration}: a task accepted by the scope ended (at {dropped_at}) \
                 after the scope returned (at {returned_at})"
            );
        } else {
            refused += 1;
        }
    }
    println!("accepted {accepted}, refused {refused}");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_to_add_to_an_instant_never_fires() {
    let value = Scope::builder()
        .timeout(Duration::MAX)
        .cleanup_timeout(Duration::MAX)
        .run(async |scope| {
            scope.defer(async { tokio::time::sleep(Duration::from_secs(1)).await });
            tokio::time::sleep(Duration::from_secs(86_400)).await;
            7
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
}

/// A task whose scope holds the next level's task, down to a leaf that
/// fails: each level's `ScopeError` holds the one below it.
fn failing_level(
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ScopeError>> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return Scope::run(async |scope| {
                scope.spawn_fallible_named("leaf", async { Err::<(), _>("disk on fire") });
            })
            .await;
        }
        Scope::builder()
            .name(format!("level-{depth}"))
            .run(async |scope| {
                scope.spawn_fallible_named(format!("task-{depth}"), failing_level(depth - 1));
            })
            .await
    })
}

#[tokio::test(start_paused = true)]
async fn an_error_nested_ten_thousand_scopes_deep_is_shown_debugged_and_dropped() {
    let error = failing_level(10_000).await.unwrap_err();
    let shown = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let shown = error.to_string();
            let debugged = format!("{error:?}");
            drop(error);
            (shown, debugged)
        })
        .unwrap()
        .join()
        .unwrap();
    let (shown, debugged) = shown;
    // The outer levels are shown; the rest is elided, not recursed into.
    assert!(
        shown.starts_with(
            "scope `level-10000` failed (1 failure); task `task-10000` failed: scope `level-9999`"
        ),
        "{shown}"
    );
    assert!(shown.contains("nested"), "{shown}");
    assert!(shown.len() < 10_000, "{} bytes", shown.len());
    assert!(debugged.len() < 50_000, "{} bytes", debugged.len());
}
