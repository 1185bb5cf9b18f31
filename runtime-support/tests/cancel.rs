//! Cancellation: soft stop vs hard cancel, and what a `CancelReason` records.

mod common;

use std::future::pending;
use std::sync::{Arc, Mutex};
use tethered::testing::assert_cancelled;

use common::{Flag, Log, Probe, secs};
use tethered::{CancelKind, CancelReason, Scope};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn stop_is_a_request_the_task_answers_by_finishing_its_work() {
    let (jobs, mut queue) = tokio::sync::mpsc::channel::<u32>(8);
    let handled = Scope::run(async |scope| {
        let consumer = scope.spawn_named("consumer", async move {
            let mut handled = Vec::new();
            loop {
                tokio::select! {
                    biased;
                    reason = tethered::stop_requested() => {
                        // Finishing the job in hand after the stop is allowed.
                        sleep(secs(1)).await;
                        handled.push(100);
                        return (handled, reason, tethered::current().is_cancelled());
                    }
                    Some(job) = queue.recv() => handled.push(job),
                }
            }
        });
        jobs.send(1).await.unwrap();
        jobs.send(2).await.unwrap();
        sleep(secs(1)).await;
        consumer.stop("draining");
        consumer.join().await.unwrap()
    })
    .await
    .unwrap();
    let (handled, reason, cancelled) = handled;
    assert_eq!(handled, [1, 2, 100]);
    assert_eq!(reason.kind(), CancelKind::Explicit);
    assert_eq!(reason.message(), Some("draining"));
    assert!(!cancelled, "a stop is not a cancel");
}

#[tokio::test(start_paused = true)]
async fn is_stopping_turns_true_on_stop_and_the_task_is_not_cancelled() {
    let (before, after) = Scope::run(async |scope| {
        let task = scope.spawn(async {
            let before = (tethered::is_stopping(), tethered::current().stop_reason());
            let reason = tethered::stop_requested().await;
            let current = tethered::current();
            let after = (
                tethered::is_stopping(),
                current.is_stopping(),
                current.is_cancelled(),
                current.cancel_reason(),
                current.stop_reason().map(|r| r.same_as(&reason)),
            );
            (before, after)
        });
        sleep(secs(1)).await;
        task.stop("wind down");
        task.join().await.unwrap()
    })
    .await
    .unwrap();
    assert!(!before.0);
    assert!(before.1.is_none());
    assert!(after.0);
    assert!(after.1);
    assert!(!after.2);
    assert!(after.3.is_none(), "a stopped task has no cancel reason");
    assert_eq!(after.4, Some(true));
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_the_future_at_its_next_await() {
    let log = Log::new();
    let probe = Probe::new();
    let outcome = Scope::run(async |scope| {
        let log = log.clone();
        let guard = probe.guard();
        let task = scope.spawn(async move {
            let _guard = guard;
            log.push("before await");
            sleep(secs(10)).await;
            log.push("after await");
        });
        sleep(secs(1)).await;
        task.cancel("hard stop");
        task.join().await
    })
    .await
    .unwrap();
    assert_cancelled!(outcome, "hard stop");
    assert_eq!(log.names(), ["before await"]);
    assert_eq!(
        probe.dropped_at().unwrap() - (Instant::now() - log.now()),
        secs(1)
    );
    let state = probe.state();
    assert!(state.cancelled, "Drop runs as the cancelled task");
    assert!(state.stopping, "a cancelled task is also stopping");
}

#[tokio::test(start_paused = true)]
async fn cancel_after_stop_cancels_and_keeps_both_reasons() {
    type Seen = Arc<Mutex<Option<(Option<CancelReason>, Option<CancelReason>)>>>;
    struct Record(Seen);
    impl Drop for Record {
        fn drop(&mut self) {
            let current = tethered::current();
            *self.0.lock().unwrap() = Some((current.stop_reason(), current.cancel_reason()));
        }
    }

    let seen = Seen::default();
    let outcome = Scope::run(async |scope| {
        let record = Record(seen.clone());
        let task = scope.spawn(async move {
            let _record = record;
            // Ignores the stop request.
            pending::<()>().await
        });
        sleep(secs(1)).await;
        task.stop("please");
        sleep(secs(1)).await;
        assert!(
            !task.is_finished(),
            "a stop does not end a task that ignores it"
        );
        task.cancel("now");
        task.join().await
    })
    .await
    .unwrap();
    assert_cancelled!(outcome, "now");
    let (stop, cancel) = seen.lock().unwrap().take().expect("dropped");
    assert_eq!(stop.unwrap().message(), Some("please"));
    assert_eq!(cancel.unwrap().message(), Some("now"));
}

#[tokio::test(start_paused = true)]
async fn scope_stop_reaches_every_child_and_the_body() {
    let seen = Scope::builder()
        .name("service")
        .run(async |scope| {
            let workers: Vec<_> = (0..3)
                .map(|n| {
                    scope.spawn_named(format!("worker-{n}"), async move {
                        let reason = tethered::stop_requested().await;
                        (n, reason.message().map(str::to_owned))
                    })
                })
                .collect();
            sleep(secs(1)).await;
            assert!(!tethered::is_stopping());
            scope.stop("deploy");
            assert!(tethered::is_stopping(), "the body runs as the scope");
            assert!(scope.is_stopping() && !scope.is_cancelled());
            let mut seen = Vec::new();
            for worker in workers {
                seen.push(worker.join().await.unwrap());
            }
            seen
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        (0..3)
            .map(|n| (n, Some("deploy".to_owned())))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn outside_any_task_nothing_is_stopping_and_there_is_no_stop_signal() {
    assert!(!tethered::is_stopping());
    assert!(!tethered::current().is_tethered());
    assert!(tethered::current().cancel_reason().is_none());
    assert!(tethered::current().stop_signal().is_none());
}

#[test]
fn stop_requested_outside_any_task_says_what_to_do_instead_of_never_resolving() {
    // Where a server library polls its graceful-shutdown future: a task
    // tethered did not spawn. Waiting there would wait for ever.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let panicked = runtime
        .block_on(async {
            tokio::spawn(async {
                tethered::stop_requested().await;
            })
            .await
        })
        .unwrap_err()
        .into_panic();
    let message = panicked.downcast::<&str>().map(|text| text.to_string());
    let message = message.unwrap_or_else(|payload| *payload.downcast::<String>().unwrap());
    assert!(message.contains("outside any tethered task"), "{message}");
    assert!(message.contains("stop_signal()"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_moved_into_an_untethered_task_sees_the_stop() {
    // The shape of axum's `with_graceful_shutdown`: a future polled on a
    // task of the library's own.
    let (accepting, mut accepted) = tokio::sync::watch::channel(true);
    let reason = Scope::builder()
        .name("main")
        .run(async |scope| {
            let signal = scope.stop_signal();
            assert!(!signal.is_stopping());
            let server = tokio::spawn(async move {
                let shutdown = signal.clone().stopped();
                shutdown.await;
                accepting.send(false).unwrap();
                signal.reason()
            });
            sleep(secs(1)).await;
            assert!(*accepted.borrow_and_update());
            scope.stop("SIGTERM");
            let reason = server.await.unwrap();
            assert!(!*accepted.borrow());
            reason
        })
        .await
        .unwrap();
    assert_eq!(reason.unwrap().message(), Some("SIGTERM"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_taken_after_the_stop_sees_it_at_once_and_a_cancel_is_a_stop() {
    Scope::run(async |scope| {
        let task = scope.spawn(async {
            let signal = tethered::current().stop_signal().unwrap();
            pending::<()>().await;
            drop(signal);
        });
        let handle = scope.handle();
        scope.stop("drain");
        let late = handle.stop_signal();
        assert_eq!(late.wait().await.message(), Some("drain"));
        task.cancel("now");
    })
    .await
    .unwrap();

    let cancelled = Scope::run(async |scope| {
        let signal = scope.stop_signal();
        scope.cancel("gone");
        signal.await
    })
    .await
    .unwrap();
    assert_eq!(cancelled.message(), Some("gone"));
}

#[tokio::test(start_paused = true)]
async fn a_supervisors_stop_signal_fires_when_its_shutdown_begins() {
    let supervised = tethered::Supervisor::builder()
        .run(async |sv| {
            let signal = sv.stop_signal();
            let watcher = tokio::spawn(signal.wait());
            drop(sv.shutdown("maintenance"));
            watcher.await.unwrap().message().map(str::to_owned)
        })
        .await
        .unwrap();
    assert_eq!(supervised.value.unwrap().as_deref(), Some("maintenance"));
}

#[tokio::test(start_paused = true)]
async fn handle_cancel_reason_records_kind_message_and_the_callers_line() {
    let (reason, line) = Scope::run(async |scope| {
        let task = scope.spawn(pending::<()>());
        let line = line!() + 1;
        task.cancel("user closed the window");
        (task.join().await.cancel_reason().cloned(), line)
    })
    .await
    .unwrap();
    let reason = reason.unwrap();
    assert_eq!(reason.kind(), CancelKind::Explicit);
    assert_eq!(reason.message(), Some("user closed the window"));
    assert_eq!(reason.location().file(), file!());
    assert_eq!(reason.location().line(), line);
    assert!(reason.cause().is_none());
}

#[tokio::test(start_paused = true)]
async fn every_cancelling_method_records_its_own_call_site() {
    let lines = Scope::run(async |scope| {
        let mut lines = Vec::new();

        let a = scope.spawn(pending::<()>());
        let line = line!() + 1;
        let outcome = a.cancel_and_wait("via cancel_and_wait").await;
        lines.push((outcome.cancel_reason().unwrap().location().line(), line));

        let b = scope.spawn(async { tethered::stop_requested().await });
        let line = line!() + 1;
        b.stop("via stop");
        lines.push((b.join().await.unwrap().location().line(), line));

        let c = scope.spawn(pending::<()>());
        let line = line!() + 1;
        c.cancel(CancelKind::Shutdown);
        let reason = assert_cancelled!(c.join().await);
        assert_eq!(reason.kind(), CancelKind::Shutdown);
        assert_eq!(reason.message(), None);
        lines.push((reason.location().line(), line));

        let d = scope.spawn(pending::<()>());
        let line = line!() + 1;
        d.cancel(String::from("owned message"));
        let reason = assert_cancelled!(d.join().await);
        assert_eq!(reason.message(), Some("owned message"));
        lines.push((reason.location().line(), line));
        lines
    })
    .await
    .unwrap();
    for (recorded, expected) in lines {
        assert_eq!(recorded, expected);
    }

    // Scope::cancel and ScopeHandle::cancel.
    let mut line = 0;
    let error = Scope::run(async |scope| {
        line = line!() + 1;
        scope.cancel("via scope");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert_eq!(error.reason().unwrap().location().line(), line);
    assert_eq!(error.reason().unwrap().location().file(), file!());

    let error = Scope::run(async |scope| {
        let handle = scope.handle();
        line = line!() + 1;
        handle.cancel("via handle");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert_eq!(error.reason().unwrap().location().line(), line);
    assert_eq!(error.reason().unwrap().message(), Some("via handle"));
}

#[tokio::test(start_paused = true)]
async fn a_prebuilt_reason_keeps_its_own_location_kind_and_cause() {
    let root = CancelReason::new(CancelKind::Signal).with_message("SIGTERM");
    let built_line = line!() + 1;
    let prebuilt = CancelReason::new(CancelKind::Shutdown)
        .with_message("going down")
        .caused_by(root.clone());
    let reason = Scope::run(async |scope| {
        let task = scope.spawn(pending::<()>());
        task.cancel(prebuilt.clone());
        assert_cancelled!(task.join().await)
    })
    .await
    .unwrap();
    assert!(reason.same_as(&prebuilt), "the reason is used as given");
    assert_eq!(reason.location().line(), built_line);
    assert_eq!(reason.kind(), CancelKind::Shutdown);
    assert!(reason.cause().unwrap().same_as(&root));
    assert_eq!(reason.root().message(), Some("SIGTERM"));
    assert_eq!(reason.chain().count(), 2);
}

#[tokio::test(start_paused = true)]
async fn origin_is_the_name_of_the_task_that_asked() {
    let victim = Probe::new();
    let other_victim = Probe::new();
    let anonymous_victim = Probe::new();
    Scope::builder()
        .name("app")
        .run(async |scope| {
            let handle = scope.handle();
            let target = handle.try_spawn_named("victim", victim.hang()).unwrap();
            scope.spawn_named("killer", async move {
                sleep(secs(1)).await;
                target.cancel("killed by a sibling");
            });
            let target = handle.try_spawn(anonymous_victim.hang()).unwrap();
            scope.spawn(async move {
                sleep(secs(1)).await;
                target.cancel("killed by an unnamed task");
            });
            // From the body: the scope is the one asking.
            let task = scope.spawn(other_victim.hang());
            sleep(secs(2)).await;
            task.cancel("killed by the body");
        })
        .await
        .unwrap();
    assert_eq!(victim.reason().origin(), Some("killer"));
    assert_eq!(victim.reason().message(), Some("killed by a sibling"));
    assert_eq!(anonymous_victim.reason().origin(), None);
    assert_eq!(other_victim.reason().origin(), Some("app"));
}

#[tokio::test(start_paused = true)]
async fn the_first_reason_wins() {
    let probe = Probe::new();
    let (first, second) = Scope::run(async |scope| {
        let task = scope.spawn(probe.hang());
        task.cancel("first");
        task.cancel("second");
        scope.cancel("scope-wide, later");
        let kept = task.cancel_reason().unwrap();
        (kept, scope.cancel_reason().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(first.message(), Some("first"));
    assert_eq!(probe.reason().message(), Some("first"));
    assert!(probe.reason().same_as(&first));
    assert_eq!(second.message(), Some("scope-wide, later"));
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_a_cancel_keeps_the_cancel_reason_but_is_reported() {
    common::quiet_expected_panics();
    // A shield is only stopped, so it can still fail after the cancel.
    let error = Scope::run(async |scope| {
        scope.shield_named("late", async {
            sleep(secs(1)).await;
            std::panic::panic_any(common::ExpectedPayload(1));
        });
        scope.cancel("cancelled first");
        pending::<()>().await
    })
    .await
    .unwrap_err();
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.failures()[0].task(), Some("late"));
    assert_eq!(error.reason().unwrap().message(), Some("cancelled first"));
    assert_eq!(error.reason().unwrap().kind(), CancelKind::Explicit);
}

#[tokio::test(start_paused = true)]
async fn parent_cancelled_chain_is_recorded_end_to_end_three_scopes_deep() {
    let leaf = Probe::new();
    let mut cancel_line = 0;
    let started = Instant::now();
    Scope::builder()
        .name("outer")
        .run(async |outer| {
            let leaf = leaf.clone();
            outer.spawn_named("mid-task", async move {
                Scope::builder()
                    .name("middle")
                    .run(async |middle| {
                        middle.spawn_named("inner-task", async move {
                            Scope::builder()
                                .name("inner")
                                .run(async |inner| {
                                    inner.spawn_named("leaf", leaf.hang());
                                    pending::<()>().await
                                })
                                .await
                        });
                        pending::<()>().await
                    })
                    .await
            });
            sleep(secs(1)).await;
            cancel_line = line!() + 1;
            outer.cancel("operator abort");
        })
        .await
        .unwrap();
    assert_eq!(started.elapsed(), secs(1));

    let reason = leaf.reason();
    let chain: Vec<(CancelKind, Option<&str>, Option<&str>)> = reason
        .chain()
        .map(|r| (r.kind(), r.origin(), r.message()))
        .collect();
    assert_eq!(
        chain,
        [
            (CancelKind::ParentCancelled, Some("inner"), None),
            (CancelKind::ParentCancelled, Some("inner-task"), None),
            (CancelKind::ParentCancelled, Some("middle"), None),
            (CancelKind::ParentCancelled, Some("mid-task"), None),
            (CancelKind::ParentCancelled, Some("outer"), None),
            (CancelKind::Explicit, Some("outer"), Some("operator abort")),
        ]
    );
    for link in reason.chain() {
        assert_eq!(link.location().file(), file!());
        assert_eq!(link.location().line(), cancel_line);
    }
    assert_eq!(reason.root().message(), Some("operator abort"));
    let text = reason.to_string();
    assert!(text.starts_with("parent cancelled"), "{text}");
    assert!(
        text.ends_with(&format!(
            "caused by: cancelled: operator abort (at {}:{}:{}, by `outer`)",
            file!(),
            cancel_line,
            reason.root().location().column()
        )),
        "{text}"
    );
    assert_eq!(text.matches("caused by:").count(), 5, "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_from_outside_is_not_swallowed_by_the_inner_scope() {
    let after_inner = Flag::new();
    let outer_error = Scope::builder()
        .name("outer")
        .timeout(secs(2))
        .run(async |_outer| {
            // A nested scope run by the body itself, not by a task.
            let inner = Scope::builder()
                .name("inner")
                .run(async |inner| {
                    inner.spawn(pending::<()>());
                    pending::<()>().await
                })
                .await;
            after_inner.set();
            inner
        })
        .await
        .unwrap_err();
    assert!(outer_error.is_timeout(), "{outer_error}");
    assert!(
        !after_inner.get(),
        "the outer body was interrupted, not handed a result to ignore"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_reason_is_visible_from_a_drop_impl() {
    struct Report(tokio::sync::mpsc::UnboundedSender<(Option<CancelReason>, Option<String>)>);
    impl Drop for Report {
        fn drop(&mut self) {
            let current = tethered::current();
            let _ = self
                .0
                .send((current.cancel_reason(), current.name().map(str::to_owned)));
        }
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    Scope::run(async |scope| {
        let report = Report(tx);
        let task = scope.spawn_named("worker", async move {
            let _report = report;
            pending::<()>().await
        });
        tokio::task::yield_now().await;
        task.cancel("enough");
    })
    .await
    .unwrap();
    let (reason, name) = rx.recv().await.unwrap();
    assert_eq!(name.as_deref(), Some("worker"));
    let reason = reason.expect("Drop sees why the task is cancelled");
    assert_eq!(reason.message(), Some("enough"));
    assert_eq!(reason.kind(), CancelKind::Explicit);
}

#[tokio::test(start_paused = true)]
async fn a_completed_task_dropping_its_locals_sees_no_cancel_reason() {
    let probe = Probe::new();
    Scope::run(async |scope| {
        scope.spawn(probe.sleep(secs(1)));
    })
    .await
    .unwrap();
    assert!(probe.finished());
    let state = probe.state();
    assert!(state.dropped_at.is_some());
    assert!(state.reason.is_none());
    assert!(!state.cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_child_is_not_a_failure_and_does_not_cancel_siblings() {
    let sibling = Probe::new();
    let body_done = Flag::new();
    let started = Instant::now();
    let value = Scope::run(async |scope| {
        let victim = scope.spawn(pending::<()>());
        scope.spawn(sibling.sleep(secs(3)));
        sleep(secs(1)).await;
        let outcome = victim.cancel_and_wait("not needed").await;
        assert!(outcome.is_cancelled());
        assert!(!outcome.is_failure());
        sleep(secs(1)).await;
        body_done.set();
        "ok"
    })
    .await
    .expect("a cancelled child does not fail the scope");
    assert_eq!(value, "ok");
    assert!(body_done.get(), "the body was not interrupted");
    assert!(sibling.finished(), "the sibling ran to its end");
    assert!(sibling.state().reason.is_none());
    assert_eq!(started.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn timeout_reason_reaches_grandchildren_with_its_cause() {
    let grandchild = Probe::new();
    let error = Scope::builder()
        .name("bounded")
        .timeout(secs(4))
        .run(async |scope| {
            let grandchild = grandchild.clone();
            scope.spawn_named("child", async move {
                Scope::builder()
                    .name("nested")
                    .run(async |nested| {
                        nested.spawn_named("grandchild", grandchild.hang());
                        pending::<()>().await
                    })
                    .await
            });
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    let reason = grandchild.reason();
    assert_eq!(reason.kind(), CancelKind::ParentCancelled);
    let root = reason.root();
    assert_eq!(root.kind(), CancelKind::Timeout);
    assert!(root.same_as(error.reason().unwrap()));
    assert_eq!(
        root.origin(),
        Some("bounded"),
        "the scope raised its own deadline"
    );
    assert_eq!(reason.chain().count(), 4);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_finished_task_changes_nothing() {
    let value = Scope::run(async |scope| {
        let task = scope.spawn(async { 5 });
        while !task.is_finished() {
            tokio::task::yield_now().await;
        }
        task.cancel("too late");
        task.join().await
    })
    .await
    .unwrap();
    assert_eq!(value.completed(), Some(5));
}

#[tokio::test(start_paused = true)]
async fn a_child_spawned_into_a_stopping_scope_starts_stopping() {
    let (late_reason, via_handle) = Scope::run(async |scope| {
        scope.stop("draining");
        let late = scope.spawn(async { tethered::stop_requested().await });
        // A stopping scope is not closing: a handle can still spawn into it.
        let via_handle = scope
            .handle()
            .try_spawn(async { tethered::is_stopping() })
            .expect("a stopping scope still accepts children");
        (late.join().await.unwrap(), via_handle.join().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(late_reason.message(), Some("draining"));
    assert!(via_handle);
}

#[tokio::test(start_paused = true)]
async fn a_scopes_own_timeout_and_exit_reasons_are_not_attributed_to_the_enclosing_task() {
    // `origin` is "the name of the task that asked". When a scope's deadline
    // passes, or its body returns with `on_exit = cancel`, the scope asks,
    // not the task that happens to run it (`runner` below did nothing).
    let timed_out = Probe::new();
    let exited = Probe::new();
    Scope::run(async |outer| {
        let timed_out = timed_out.clone();
        let exited = exited.clone();
        outer.spawn_named("runner", async move {
            let _ = Scope::builder()
                .name("bounded")
                .timeout(secs(1))
                .run(async |scope| {
                    scope.spawn(timed_out.hang());
                    pending::<()>().await
                })
                .await;
            let _ = Scope::builder()
                .name("exiting")
                .on_exit(tethered::OnExit::Cancel)
                .run(async |scope| {
                    scope.spawn(exited.hang());
                })
                .await;
        });
    })
    .await
    .unwrap();
    let timeout = timed_out.reason().root().clone();
    assert_eq!(timeout.kind(), CancelKind::Timeout);
    let exit = exited.reason();
    assert_eq!(exit.kind(), CancelKind::ScopeExit);
    assert_eq!(
        (timeout.origin(), exit.origin()),
        (Some("bounded"), Some("exiting")),
        "timeout reason: {timeout}; exit reason: {exit}"
    );
}

#[tokio::test(start_paused = true)]
async fn sibling_failure_reaches_nephews_as_parent_cancelled_caused_by_it() {
    let sibling = Probe::new();
    let nephew = Probe::new();
    let error = Scope::builder()
        .name("group")
        .run(async |scope| {
            scope.spawn_named("sibling", sibling.hang());
            let nephew = nephew.clone();
            scope.spawn_named("uncle", async move {
                Scope::builder()
                    .name("family")
                    .run(async |family| {
                        family.spawn_named("nephew", nephew.hang());
                        pending::<()>().await
                    })
                    .await
            });
            scope.spawn_fallible_named("failing", async {
                sleep(secs(1)).await;
                Err::<(), _>("broken")
            });
            pending::<()>().await
        })
        .await
        .unwrap_err();
    let first = error.reason().unwrap();
    assert_eq!(first.kind(), CancelKind::SiblingFailed);
    assert!(sibling.reason().same_as(first), "siblings get it unchanged");
    let below = nephew.reason();
    let chain: Vec<(CancelKind, Option<&str>)> =
        below.chain().map(|r| (r.kind(), r.origin())).collect();
    assert_eq!(
        chain,
        [
            (CancelKind::ParentCancelled, Some("family")),
            (CancelKind::ParentCancelled, Some("uncle")),
            (CancelKind::SiblingFailed, Some("failing")),
        ]
    );
    assert!(below.root().same_as(first));
}

/// Counts its wake-ups.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn new() -> Arc<Self> {
        Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)))
    }

    fn wakes(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `stop_requested()` polled again and again, with the same waker or a new
/// one, is woken by the stop and then resolves with its reason.
#[tokio::test(start_paused = true)]
async fn stop_requested_polled_repeatedly_sees_the_stop_whatever_the_waker() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    Scope::run(async |scope| {
        let (first, second) = (CountingWaker::new(), CountingWaker::new());
        let mut stop = std::pin::pin!(tethered::stop_requested());
        for waker in [&first, &first, &first, &second, &second] {
            let waker = Waker::from(waker.clone());
            let poll = stop.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(poll.is_pending());
        }
        scope.stop("deploy");
        // Both wakers were registered; the second replaced the first in
        // this future, but the node still wakes both.
        assert_eq!((first.wakes(), second.wakes()), (1, 1));
        let waker = Waker::from(second.clone());
        let Poll::Ready(reason) = stop.as_mut().poll(&mut Context::from_waker(&waker)) else {
            panic!("the stop was not seen");
        };
        assert_eq!(reason.message(), Some("deploy"));
    })
    .await
    .unwrap();
}
