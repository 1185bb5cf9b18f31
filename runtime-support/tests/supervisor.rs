//! `Supervisor` under paused time: restart policies × strategies, backoff,
//! the intensity limit, dynamic children and shields, the phased shutdown
//! and its report, nesting in scopes.
//!
//! Children log what they see on a [`Timeline`] (paused-clock times since
//! the test started), so each test checks exactly who started, stopped or
//! was cancelled, in which order, and when.

mod common;

use std::fmt;
use std::future::pending;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{EXPECTED, Flag, Probe, ms, quiet_expected_panics, secs};
use tethered::{
    Backoff, CancelKind, CancelReason, ChildEnd, ChildExit, ChildReport, ChildRole, ChildShutdown,
    ChildSpec, EntryKind, EntryState, Restart, Scope, ScopeError, ShutdownReport, SpawnError,
    Strategy, Supervised, Supervisor, SupervisorError, SupervisorErrorKind, SupervisorStats,
    TreeEntry,
};
use tokio::time::{Instant, sleep};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// An ordered log of events, each with the paused-clock time since the
/// timeline was made, in whole milliseconds.
#[derive(Clone)]
struct Timeline {
    start: Instant,
    events: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            start: Instant::now(),
            events: Arc::default(),
        }
    }

    fn push(&self, event: impl Into<String>) {
        let at = self.start.elapsed();
        self.events.lock().unwrap().push((at, event.into()));
    }

    /// Time since the timeline was made.
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Every event as `(milliseconds, event)`; every time must be a whole
    /// number of milliseconds (the paused clock only jumps by those).
    fn events(&self) -> Vec<(u64, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(at, event)| (whole_ms(*at), event.clone()))
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.events().into_iter().map(|(_, event)| event).collect()
    }

    /// When `event` was logged (panics if it was not).
    fn at(&self, event: &str) -> u64 {
        self.events()
            .into_iter()
            .find(|(_, logged)| logged == event)
            .map(|(at, _)| at)
            .unwrap_or_else(|| panic!("`{event}` was not logged: {:?}", self.events()))
    }

    /// The times of the events starting with `prefix`.
    fn times_of(&self, prefix: &str) -> Vec<u64> {
        self.events()
            .into_iter()
            .filter(|(_, event)| event.starts_with(prefix))
            .map(|(at, _)| at)
            .collect()
    }
}

impl Timeline {
    /// [`Timeline::events`], with each run of cancellations logged in the
    /// same instant sorted by name: the cancel phase cancels every child
    /// at once, and in which order the runtime then polls them is not the
    /// supervisor's to decide.
    fn events_cancels_sorted(&self) -> Vec<(u64, String)> {
        sort_cancel_ties(self.events())
    }
}

fn sort_cancel_ties(mut events: Vec<(u64, String)>) -> Vec<(u64, String)> {
    let mut start = 0;
    while start < events.len() {
        let mut end = start;
        while end < events.len()
            && events[end].1.starts_with("cancel ")
            && events[end].0 == events[start].0
        {
            end += 1;
        }
        events[start..end].sort();
        start = end.max(start + 1);
    }
    events
}

fn whole_ms(at: Duration) -> u64 {
    assert_eq!(at.subsec_nanos() % 1_000_000, 0, "{at:?} is not whole ms");
    at.as_millis() as u64
}

/// `(ms, event)` pairs, for comparing with [`Timeline::events`].
fn expect(events: &[(u64, &str)]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|(at, event)| (*at, (*event).to_owned()))
        .collect()
}

/// How a scripted child's run ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Returns `Ok(())`.
    Complete,
    /// Returns `Err`.
    Fail,
    /// Panics.
    Panic,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exit::Complete => "complete",
            Exit::Fail => "fail",
            Exit::Panic => "panic",
        })
    }
}

/// What one run of a scripted child does.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Ends by itself after this long, this way (logs `"{exit} {who}"`).
    End(Duration, Exit),
    /// Runs until asked to stop, then completes (logs `"stop {who}"`).
    UntilStop,
    /// Sees the stop request (logs `"stop {who}"`) but keeps working this
    /// long before completing (logs `"done {who}"`).
    Linger(Duration),
    /// Never looks at stop requests: ends only when cancelled.
    Deaf,
}

/// Logs `"cancel {who}"` when dropped as a cancelled task.
struct OnCancel {
    timeline: Timeline,
    who: String,
}

impl Drop for OnCancel {
    fn drop(&mut self) {
        if tethered::current().is_cancelled() {
            self.timeline.push(format!("cancel {}", self.who));
        }
    }
}

/// One run of a scripted child, logging what it sees as `who`.
async fn act(timeline: Timeline, who: String, act: Act) -> Result<(), String> {
    timeline.push(format!("start {who}"));
    let _on_cancel = OnCancel {
        timeline: timeline.clone(),
        who: who.clone(),
    };
    match act {
        Act::End(after, exit) => {
            sleep(after).await;
            timeline.push(format!("{exit} {who}"));
            match exit {
                Exit::Complete => Ok(()),
                Exit::Fail => Err(format!("{who} broke")),
                Exit::Panic => panic!("{EXPECTED}: {who} blew up"),
            }
        }
        Act::UntilStop => {
            tethered::stop_requested().await;
            timeline.push(format!("stop {who}"));
            Ok(())
        }
        Act::Linger(working) => {
            tethered::stop_requested().await;
            timeline.push(format!("stop {who}"));
            sleep(working).await;
            timeline.push(format!("done {who}"));
            Ok(())
        }
        Act::Deaf => pending().await,
    }
}

/// A restartable child named `name` whose run number `n` (from 1) does
/// `script(n)`, logged as `"{name}#{n}"`.
#[track_caller]
fn spec(
    timeline: &Timeline,
    name: &'static str,
    script: impl Fn(u32) -> Act + Send + 'static,
) -> ChildSpec<'static> {
    let timeline = timeline.clone();
    let mut runs = 0;
    ChildSpec::new(name, move || {
        runs += 1;
        act(timeline.clone(), format!("{name}#{runs}"), script(runs))
    })
}

/// A script whose first run does `first` and every later one `then`.
fn first_then(first: Act, then: Act) -> impl Fn(u32) -> Act + Send + 'static {
    move |run| if run == 1 { first } else { then }
}

/// The counts as `(started, restarted, completed, failed, panicked,
/// cancelled, live)` (the struct is `non_exhaustive`).
fn counts(stats: SupervisorStats) -> (u64, u64, u64, u64, u64, u64, u64) {
    (
        stats.started,
        stats.restarted,
        stats.completed,
        stats.failed,
        stats.panicked,
        stats.cancelled,
        stats.live,
    )
}

/// The report's children as `(name, role)`, sorted by name.
fn roles(report: &ShutdownReport) -> Vec<(String, ChildRole)> {
    let mut roles: Vec<_> = report
        .children()
        .iter()
        .map(|child| (child.name().unwrap_or("?").to_owned(), child.role()))
        .collect();
    roles.sort_by(|a, b| a.0.cmp(&b.0));
    roles
}

/// When a child that exited did so, counted from the start of the shutdown.
fn after(child: &ChildReport) -> Duration {
    match child.end() {
        ChildEnd::Exited { after, .. } => *after,
        _ => panic!("{child} did not end in the shutdown"),
    }
}

fn cancel_reason(exit: &ChildExit) -> &CancelReason {
    match exit {
        ChildExit::Cancelled(reason) => reason,
        other => panic!("expected a cancellation, got {other}"),
    }
}

/// The entry of the supervisor named `name` in the live task tree.
fn tree_entry(name: &str) -> Option<TreeEntry> {
    tethered::tree()
        .iter()
        .find(|entry| entry.kind() == EntryKind::Supervisor && entry.name() == Some(name))
        .cloned()
}

fn child_names(entry: &TreeEntry) -> Vec<&str> {
    entry
        .children()
        .iter()
        .map(|child| child.name().unwrap_or("?"))
        .collect()
}

/// What a task shutting a supervisor down from outside saw: when its
/// `shutdown` call returned, and the report.
type ShutdownCall = tokio::task::JoinHandle<(Duration, ShutdownReport)>;

/// Shuts `sv` down from a plain tokio task `after` the timeline's start,
/// the way a signal handler holding a clone of the supervisor would.
fn shutdown_at(
    timeline: &Timeline,
    sv: &Supervisor,
    at: Duration,
    reason: CancelReason,
) -> ShutdownCall {
    let sv = sv.clone();
    let timeline = timeline.clone();
    tokio::spawn(async move {
        sleep(at.saturating_sub(timeline.now())).await;
        let report = sv.shutdown(reason).await;
        (timeline.now(), report)
    })
}

// ---------------------------------------------------------------------------
// 1. Restart policy × strategy × how the child ends
// ---------------------------------------------------------------------------

/// Three static children `a`, `b`, `c`; `a` and `c` are permanent and run
/// until stopped. `b` has `policy`, and its first run ends after 1s by
/// `exit`; later runs of `b` run until stopped. The body returns at 3s.
///
/// Checks, against a model of OTP's rules, exactly who is stopped (last
/// declared first, at 1s), who is restarted (in declaration order, after
/// `b`'s 100ms backoff), the counts before and after the shutdown, and that
/// the shutdown stops the survivors last declared first.
async fn policy_scenario(strategy: Strategy, policy: Restart, exit: Exit) {
    quiet_expected_panics();
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .name("matrix")
        .strategy(strategy)
        .child(spec(&timeline, "a", |_| Act::UntilStop))
        .child(
            spec(
                &timeline,
                "b",
                first_then(Act::End(secs(1), exit), Act::UntilStop),
            )
            .restart(policy)
            .backoff(Backoff::new(ms(100), ms(100))),
        )
        .child(spec(&timeline, "c", |_| Act::UntilStop))
        .run(async |sv| {
            sleep(secs(3)).await;
            (sv.stats(), sv.clone())
        })
        .await
        .unwrap();
    let (running, sv) = supervised.value.unwrap();

    let restarts = match policy {
        Restart::Permanent => true,
        Restart::Transient => exit != Exit::Complete,
        Restart::Temporary => false,
    };
    let (stopped, restarted): (&[&str], &[&str]) = match (restarts, strategy) {
        (false, _) => (&[], &[]),
        (true, Strategy::OneForOne) => (&[], &["b"]),
        (true, Strategy::OneForAll) => (&["c", "a"], &["a", "b", "c"]),
        (true, Strategy::RestForOne) => (&["c"], &["b", "c"]),
    };
    let mut expected: Vec<(u64, String)> =
        expect(&[(0, "start a#1"), (0, "start b#1"), (0, "start c#1")]);
    expected.push((1_000, format!("{exit} b#1")));
    for name in stopped {
        expected.push((1_000, format!("stop {name}#1")));
    }
    for name in restarted {
        expected.push((1_100, format!("start {name}#2")));
    }
    // The body returned: the survivors stop, last declared first.
    let run_of = |name: &str| if restarted.contains(&name) { 2 } else { 1 };
    for name in ["c", "b", "a"] {
        if name != "b" || restarts {
            expected.push((3_000, format!("stop {name}#{}", run_of(name))));
        }
    }
    assert_eq!(
        timeline.events(),
        expected,
        "{strategy:?} / {policy:?} / {exit:?}"
    );

    let n = |count: usize| count as u64;
    let live = if restarts { 3 } else { 2 };
    let ended_itself = u64::from(exit == Exit::Complete);
    assert_eq!(
        counts(running),
        (
            3 + n(restarted.len()),
            n(restarted.len()),
            ended_itself + n(stopped.len()),
            u64::from(exit == Exit::Fail),
            u64::from(exit == Exit::Panic),
            0,
            live,
        ),
        "counts at 3s, {strategy:?} / {policy:?} / {exit:?}: {running:?}"
    );
    let after_shutdown = sv.stats();
    assert_eq!(
        counts(after_shutdown),
        (
            3 + n(restarted.len()),
            n(restarted.len()),
            ended_itself + n(stopped.len()) + live,
            u64::from(exit == Exit::Fail),
            u64::from(exit == Exit::Panic),
            0,
            0,
        ),
        "counts after the shutdown: {after_shutdown:?}"
    );

    let report = supervised.report;
    assert_eq!(report.reason().kind(), CancelKind::ScopeExit);
    assert_eq!(report.took(), Duration::ZERO);
    // Every static child is in the report, one that was not restarted as
    // not running.
    let statics = ["a", "b", "c"].map(|name| (name.to_owned(), ChildRole::Static));
    assert_eq!(roles(&report), statics);
    for child in report.children() {
        if child.name() == Some("b") && !restarts {
            assert!(
                matches!(child.end(), ChildEnd::NotRunning { next_start: None }),
                "{child}"
            );
            assert!(
                child
                    .to_string()
                    .contains("not running: its policy did not restart it")
            );
            assert_eq!(child.starts(), Some(1));
            assert_eq!(
                child.last_failure().is_some(),
                exit != Exit::Complete,
                "{child}"
            );
            continue;
        }
        assert!(
            matches!(child.exit(), Some(ChildExit::Completed)),
            "{child}"
        );
        assert_eq!(after(child), Duration::ZERO);
    }
}

macro_rules! policy_matrix {
    ($($strategy:ident => $module:ident),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(start_paused = true)]
            async fn permanent_child_that_completes() {
                policy_scenario(Strategy::$strategy, Restart::Permanent, Exit::Complete).await;
            }

            #[tokio::test(start_paused = true)]
            async fn permanent_child_that_fails() {
                policy_scenario(Strategy::$strategy, Restart::Permanent, Exit::Fail).await;
            }

            #[tokio::test(start_paused = true)]
            async fn permanent_child_that_panics() {
                policy_scenario(Strategy::$strategy, Restart::Permanent, Exit::Panic).await;
            }

            #[tokio::test(start_paused = true)]
            async fn transient_child_that_completes() {
                policy_scenario(Strategy::$strategy, Restart::Transient, Exit::Complete).await;
            }

            #[tokio::test(start_paused = true)]
            async fn transient_child_that_fails() {
                policy_scenario(Strategy::$strategy, Restart::Transient, Exit::Fail).await;
            }

            #[tokio::test(start_paused = true)]
            async fn transient_child_that_panics() {
                policy_scenario(Strategy::$strategy, Restart::Transient, Exit::Panic).await;
            }

            #[tokio::test(start_paused = true)]
            async fn temporary_child_that_completes() {
                policy_scenario(Strategy::$strategy, Restart::Temporary, Exit::Complete).await;
            }

            #[tokio::test(start_paused = true)]
            async fn temporary_child_that_fails() {
                policy_scenario(Strategy::$strategy, Restart::Temporary, Exit::Fail).await;
            }

            #[tokio::test(start_paused = true)]
            async fn temporary_child_that_panics() {
                policy_scenario(Strategy::$strategy, Restart::Temporary, Exit::Panic).await;
            }
        }
    )*};
}

policy_matrix! {
    OneForOne => one_for_one,
    OneForAll => one_for_all,
    RestForOne => rest_for_one,
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_neither_temporary_siblings_nor_transient_ones_already_done() {
    let timeline = Timeline::new();
    let none = Backoff::new(ms(50), ms(50));
    let supervised = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .grace(secs(1))
        .child(spec(&timeline, "temp", |_| Act::UntilStop).restart(Restart::Temporary))
        .child(
            spec(
                &timeline,
                "done",
                first_then(Act::End(ms(500), Exit::Complete), Act::UntilStop),
            )
            .restart(Restart::Transient),
        )
        .child(
            spec(
                &timeline,
                "crashy",
                first_then(Act::End(secs(1), Exit::Fail), Act::UntilStop),
            )
            .backoff(none),
        )
        .child(spec(&timeline, "trans", |_| Act::UntilStop).restart(Restart::Transient))
        // Its first run ignores the strategy's stop: cancelled after the grace.
        .child(spec(
            &timeline,
            "deaf",
            first_then(Act::Deaf, Act::UntilStop),
        ))
        .run(async |sv| {
            sleep(secs(4)).await;
            sv.stats()
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start temp#1"),
            (0, "start done#1"),
            (0, "start crashy#1"),
            (0, "start trans#1"),
            (0, "start deaf#1"),
            (500, "complete done#1"),
            (1_000, "fail crashy#1"),
            // Last declared first, each waited for: `deaf` takes the grace.
            (2_000, "cancel deaf#1"),
            (2_000, "stop trans#1"),
            (2_000, "stop temp#1"),
            // Due at 1.05s, so at once; `temp` and `done` stay ended.
            (2_000, "start crashy#2"),
            (2_000, "start trans#2"),
            (2_000, "start deaf#2"),
            (4_000, "stop deaf#2"),
            (4_000, "stop trans#2"),
            (4_000, "stop crashy#2"),
        ])
    );
    let stats = supervised.value.unwrap();
    // started 5 + 3; completed `done`, `trans`, `temp`; cancelled `deaf`.
    assert_eq!(counts(stats), (8, 3, 3, 1, 0, 1, 3));
    let report = supervised.report;
    let statics = ["crashy", "deaf", "done", "temp", "trans"];
    assert_eq!(
        roles(&report),
        statics.map(|name| (name.to_owned(), ChildRole::Static))
    );
    for child in report.children() {
        match child.name() {
            // Ended for good before the shutdown: not running, each with
            // its one start.
            Some("done" | "temp") => {
                assert!(
                    matches!(child.end(), ChildEnd::NotRunning { next_start: None }),
                    "{child}"
                );
                assert_eq!(child.starts(), Some(1), "{child}");
            }
            _ => assert!(
                matches!(child.exit(), Some(ChildExit::Completed)),
                "{child}"
            ),
        }
    }
    // Restarted once: two starts, and the failure that led to it.
    let crashy = report.child("crashy").unwrap();
    assert_eq!(crashy.starts(), Some(2));
    assert!(crashy.last_failure().is_some());
    assert!(
        crashy
            .to_string()
            .contains("; started 2 times, last failure: failed: "),
        "{crashy}"
    );
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_leaves_the_children_declared_before_alone() {
    quiet_expected_panics();
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .strategy(Strategy::RestForOne)
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .child(
            spec(
                &timeline,
                "cache",
                first_then(Act::End(secs(1), Exit::Panic), Act::UntilStop),
            )
            .backoff(Backoff::new(ms(250), secs(1))),
        )
        .child(spec(&timeline, "api", |_| Act::Linger(ms(300))))
        .child(spec(&timeline, "metrics", |_| Act::UntilStop).restart(Restart::Temporary))
        .run(async |sv| {
            sleep(secs(3)).await;
            sv.stats()
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start db#1"),
            (0, "start cache#1"),
            (0, "start api#1"),
            (0, "start metrics#1"),
            (1_000, "panic cache#1"),
            (1_000, "stop metrics#1"),
            (1_000, "stop api#1"),
            // `api` finishes its work before the restart is due.
            (1_300, "done api#1"),
            (1_300, "start cache#2"),
            (1_300, "start api#2"),
            (3_000, "stop api#2"),
            (3_300, "done api#2"),
            (3_300, "stop cache#2"),
            (3_300, "stop db#1"),
        ])
    );
    assert_eq!(counts(supervised.value.unwrap()), (6, 2, 2, 0, 1, 0, 3));
    assert_eq!(supervised.report.took(), ms(300));
}

// ---------------------------------------------------------------------------
// 2. Backoff
// ---------------------------------------------------------------------------

/// A supervisor with one static child running `script` with `backoff`,
/// and a body that returns after `running`; returns the times (ms) at
/// which the child started.
async fn start_times(
    backoff: Backoff,
    seed: u64,
    running: Duration,
    script: impl Fn(u32) -> Act + Send + 'static,
) -> Vec<u64> {
    let timeline = Timeline::new();
    Supervisor::builder()
        .seed(seed)
        .intensity(1_000, secs(60))
        .child(spec(&timeline, "flaky", script).backoff(backoff))
        .run(async |_| sleep(running).await)
        .await
        .unwrap();
    timeline.times_of("start flaky#")
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_from_initial_up_to_max() {
    let backoff = Backoff::new(ms(100), secs(1));
    let starts = start_times(backoff, 0, ms(5_200), |_| {
        Act::End(Duration::ZERO, Exit::Fail)
    })
    .await;
    // Waits of 100, 200, 400, 800, then 1000 (the max) every time.
    assert_eq!(starts, [0, 100, 300, 700, 1_500, 2_500, 3_500, 4_500]);
}

#[tokio::test(start_paused = true)]
async fn backoff_with_factor_three_and_a_completing_permanent_child() {
    let backoff = Backoff::new(ms(10), ms(500)).factor(3.0);
    // A permanent child is restarted even when it completes.
    let starts = start_times(backoff, 0, secs(1), |_| {
        Act::End(Duration::ZERO, Exit::Complete)
    })
    .await;
    // Waits of 10, 30, 90, 270, then 500.
    assert_eq!(starts, [0, 10, 40, 130, 400, 900]);
}

#[tokio::test(start_paused = true)]
async fn backoff_starts_over_once_a_child_ran_for_at_least_max() {
    let backoff = Backoff::new(ms(100), secs(1));
    // Run 3 lasts exactly `max` before failing: the series starts over.
    let starts = start_times(backoff, 0, ms(2_500), |run| {
        let lasted = if run == 3 { secs(1) } else { Duration::ZERO };
        Act::End(lasted, Exit::Fail)
    })
    .await;
    // 0 → fails → +100 → fails → +200 → runs 1s, fails at 1300 → +100
    // (reset) → fails → +200 → fails → +400.
    assert_eq!(starts, [0, 100, 300, 1_400, 1_600, 2_000]);
}

#[tokio::test(start_paused = true)]
async fn backoff_keeps_growing_when_a_child_ran_just_under_max() {
    let backoff = Backoff::new(ms(100), secs(1));
    let starts = start_times(backoff, 0, ms(3_000), |run| {
        let lasted = if run == 3 { ms(999) } else { Duration::ZERO };
        Act::End(lasted, Exit::Fail)
    })
    .await;
    // Run 3 fails at 1299, one millisecond short of `max`: the next wait is
    // the third of the series (400), not the first; then 800.
    assert_eq!(starts, [0, 100, 300, 1_699, 2_499]);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_per_child_and_a_strategy_restart_uses_the_failed_childs_delay() {
    let timeline = Timeline::new();
    Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .intensity(100, secs(60))
        .child(
            spec(&timeline, "slow", |_| Act::UntilStop).backoff(Backoff::new(secs(10), secs(10))),
        )
        .child(
            spec(&timeline, "fast", |run| {
                if run <= 2 {
                    Act::End(ms(100), Exit::Fail)
                } else {
                    Act::UntilStop
                }
            })
            .backoff(Backoff::new(ms(50), secs(1))),
        )
        .run(async |_| sleep(secs(1)).await)
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start slow#1"),
            (0, "start fast#1"),
            (100, "fail fast#1"),
            (100, "stop slow#1"),
            // `fast`'s backoff (50ms), not `slow`'s (10s).
            (150, "start slow#2"),
            (150, "start fast#2"),
            (250, "fail fast#2"),
            (250, "stop slow#2"),
            // `fast`'s second consecutive restart: 100ms.
            (350, "start slow#3"),
            (350, "start fast#3"),
            (1_000, "stop fast#3"),
            (1_000, "stop slow#3"),
        ])
    );
}

/// The waits between the first 7 restarts of a child that always fails at
/// once, with a jittered backoff and the supervisor seeded with `seed`.
async fn jittered_waits(seed: u64) -> Vec<u64> {
    let backoff = Backoff::new(ms(100), secs(1)).jitter(0.5);
    let starts = start_times(backoff, seed, secs(5), |_| {
        Act::End(Duration::ZERO, Exit::Fail)
    })
    .await;
    assert!(starts.len() >= 8, "{starts:?}");
    starts.windows(2).take(7).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_is_seeded_and_stays_within_its_band() {
    let full = [100, 200, 400, 800, 1_000, 1_000, 1_000];
    let waits = jittered_waits(7).await;
    for (wait, full) in waits.iter().zip(full) {
        // In [delay × (1 − 0.5), delay] (the timer rounds up to whole ms).
        assert!(
            (full / 2..=full).contains(wait),
            "wait {wait}ms outside [{}, {full}]: {waits:?}",
            full / 2
        );
    }
    assert_ne!(waits, full, "no jitter was applied");
    // The same seed replays the same waits; another seed draws others.
    assert_eq!(jittered_waits(7).await, waits);
    assert_ne!(jittered_waits(8).await, waits);
}

#[test]
fn backoff_delay_jitter_is_deterministic_and_bounded() {
    let backoff = Backoff::new(ms(100), secs(1)).jitter(0.25);
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..1_000u64 {
        for attempt in 0..6 {
            let full = Backoff::new(ms(100), secs(1)).delay(attempt, seed);
            let delay = backoff.delay(attempt, seed);
            assert_eq!(delay, backoff.delay(attempt, seed));
            assert!(
                delay >= full.mul_f64(0.75) && delay <= full,
                "{delay:?} outside [{:?}, {full:?}]",
                full.mul_f64(0.75)
            );
            distinct.insert(delay);
        }
    }
    assert!(distinct.len() > 1_000, "{} distinct delays", distinct.len());
    // Out-of-range settings are clamped, not trusted.
    let wild = Backoff::new(secs(1), ms(10));
    assert_eq!(wild.max(), secs(1), "max is raised to initial");
    assert_eq!(wild.factor(0.5).delay(5, 0), secs(1), "factor < 1 is 1");
    let whole = Backoff::new(ms(100), ms(100)).jitter(7.0);
    assert!(whole.delay(0, 3) <= ms(100));
    assert_eq!(
        Backoff::new(ms(100), ms(100)).jitter(f64::NAN).delay(0, 3),
        ms(100)
    );
    assert_eq!(Backoff::default().initial(), ms(100));
    assert_eq!(Backoff::default().max(), secs(5));
}

// ---------------------------------------------------------------------------
// 3. Intensity
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn passing_the_intensity_limit_fails_the_supervisor_and_shuts_the_rest_down() {
    let timeline = Timeline::new();
    let db_factory = {
        let timeline = timeline.clone();
        let mut runs = 0;
        move || {
            runs += 1;
            act(
                timeline.clone(),
                format!("db#{runs}"),
                Act::End(Duration::ZERO, Exit::Fail),
            )
        }
    };
    let (db, db_line) = (ChildSpec::new("db", db_factory), line!());
    let error = Supervisor::builder()
        .name("shop")
        .intensity(2, secs(10))
        .grace(secs(1))
        .child(db.backoff(Backoff::new(ms(100), secs(1))))
        .child(spec(&timeline, "web", |_| Act::UntilStop))
        .child(spec(&timeline, "cache", |_| Act::Deaf))
        .run(async |sv| {
            sv.spawn(
                "request",
                act(timeline.clone(), "request".into(), Act::Linger(ms(200))),
            )
            .unwrap();
            pending::<()>().await
        })
        .await
        .unwrap_err();
    let done_at = timeline.now();

    // Fails at 0, 100 and 300: the third restart in 10s is one too many.
    assert_eq!(timeline.times_of("start db#"), [0, 100, 300]);
    assert_eq!(timeline.times_of("fail db#"), [0, 100, 300]);
    // Then the shutdown: the request lingers 200ms, and the body, which
    // never listens, is cancelled when the 1s grace is over. Then the
    // static children, last declared first, each with its own second:
    // `cache` never listens and is cancelled when its second is up; `web`
    // is asked then, and stops.
    assert_eq!(timeline.at("stop request"), 300);
    assert_eq!(timeline.at("done request"), 500);
    assert_eq!(timeline.at("cancel cache#1"), 2_300);
    assert_eq!(timeline.at("stop web#1"), 2_300);
    assert_eq!(done_at, ms(2_300));

    assert_eq!(error.child(), Some("db"));
    let SupervisorErrorKind::RestartIntensity {
        child,
        location,
        max_restarts,
        within,
        last_failures,
    } = error.kind()
    else {
        panic!("{error:?}")
    };
    assert_eq!(child, "db");
    assert_eq!((location.file(), location.line()), (file!(), db_line));
    assert_eq!((*max_restarts, *within), (2, secs(10)));
    let messages: Vec<String> = last_failures
        .iter()
        .map(|failure| failure.error().unwrap().to_string())
        .collect();
    assert_eq!(messages, ["db#1 broke", "db#2 broke", "db#3 broke"]);
    assert!(
        last_failures
            .iter()
            .all(|failure| failure.task() == Some("db"))
    );
    assert_eq!(
        error.to_string(),
        format!(
            "supervisor `shop` failed: child `db` (declared at {location}) needed more than 2 \
             restarts within 10s\n  task `db` failed: db#1 broke\n  task `db` failed: db#2 broke\n  \
             task `db` failed: db#3 broke"
        )
    );
    let source: &dyn std::error::Error = &error;
    assert!(source.to_string().starts_with("supervisor `shop` failed"));

    let report = error.report();
    assert_eq!(report.supervisor(), Some("shop"));
    assert_eq!(report.reason().kind(), CancelKind::SiblingFailed);
    assert_eq!(report.reason().origin(), Some("db"));
    assert_eq!(
        report.reason().message(),
        Some("supervisor `shop` gave up: `db` needed more than 2 restarts within 10s")
    );
    assert_eq!(report.took(), secs(2));
    assert_eq!(
        roles(report),
        [
            ("cache".to_owned(), ChildRole::Static),
            ("db".to_owned(), ChildRole::Static),
            ("request".to_owned(), ChildRole::Dynamic),
            ("web".to_owned(), ChildRole::Static),
        ]
    );
    // The child that passed the limit is in the report, not running, with
    // its starts and how its last one failed.
    let db = report.child("db").unwrap();
    assert!(
        matches!(db.end(), ChildEnd::NotRunning { next_start: None }),
        "{db}"
    );
    assert_eq!(db.starts(), Some(3));
    assert!(db.last_failure().is_some(), "{db}");
    let request = report.child("request").unwrap();
    assert!(matches!(request.exit(), Some(ChildExit::Completed)));
    assert_eq!(after(request), ms(200));
    let cache = report.child("cache").unwrap();
    assert_eq!(after(cache), secs(2));
    let reason = cancel_reason(cache.exit().unwrap());
    assert!(reason.root().same_as(report.reason()), "{reason}");
    let web = report.child("web").unwrap();
    assert_eq!(after(web), secs(2));
    assert!(matches!(web.exit(), Some(ChildExit::Completed)), "{web}");
    assert!(report.stragglers().next().is_none());
}

#[tokio::test(start_paused = true)]
async fn intensity_counts_only_restarts_inside_the_window() {
    // Fails every 1000ms exactly: each restart is the only one in the
    // last second, so a limit of 1 per second is never passed.
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .intensity(1, secs(1))
        .child(spec(&timeline, "tick", |_| Act::End(secs(1), Exit::Fail)).backoff(Backoff::none()))
        .run(async |sv| {
            sleep(ms(10_500)).await;
            sv.stats()
        })
        .await
        .unwrap();
    assert_eq!(timeline.times_of("start tick#").len(), 11);
    assert_eq!(counts(supervised.value.unwrap()), (11, 10, 0, 10, 0, 0, 1));

    // Every 999ms: two restarts fall inside one second.
    let timeline = Timeline::new();
    let error = Supervisor::builder()
        .intensity(1, secs(1))
        .child(spec(&timeline, "tick", |_| Act::End(ms(999), Exit::Fail)).backoff(Backoff::none()))
        .run(async |_| {
            tethered::stop_requested().await;
        })
        .await
        .unwrap_err();
    assert_eq!(timeline.times_of("fail tick#"), [999, 1_998]);
    assert_eq!(timeline.now(), ms(1_998));
    assert_eq!(error.child(), Some("tick"));
}

#[tokio::test(start_paused = true)]
async fn intensity_zero_fails_on_the_first_restart_but_not_on_a_temporary_child() {
    let timeline = Timeline::new();
    let error = Supervisor::builder()
        .intensity(0, secs(5))
        .child(
            spec(&timeline, "once", |_| Act::End(ms(10), Exit::Fail)).restart(Restart::Temporary),
        )
        .child(
            spec(&timeline, "fine", |_| Act::End(ms(20), Exit::Complete))
                .restart(Restart::Transient),
        )
        .child(spec(&timeline, "loop", |_| {
            Act::End(ms(30), Exit::Complete)
        }))
        .run(async |_| {
            tethered::stop_requested().await;
        })
        .await
        .unwrap_err();
    // `once` and `fine` needed no restart; `loop`, permanent, did.
    assert_eq!(error.child(), Some("loop"));
    let SupervisorErrorKind::RestartIntensity { last_failures, .. } = error.kind() else {
        panic!("{error:?}")
    };
    assert!(last_failures.is_empty(), "it completed: no failure to show");
    assert_eq!(timeline.now(), ms(30));
    assert_eq!(timeline.times_of("start loop#"), [0]);
}

#[tokio::test(start_paused = true)]
async fn intensity_error_keeps_the_last_five_failures_panics_included() {
    quiet_expected_panics();
    let timeline = Timeline::new();
    let error = Supervisor::builder()
        .intensity(6, secs(60))
        .child(
            spec(&timeline, "worker", |run| {
                let exit = if run % 2 == 0 {
                    Exit::Panic
                } else {
                    Exit::Fail
                };
                Act::End(Duration::ZERO, exit)
            })
            .backoff(Backoff::none()),
        )
        .run(async |_| pending::<()>().await)
        .await
        .unwrap_err();
    let SupervisorErrorKind::RestartIntensity { last_failures, .. } = error.kind() else {
        panic!("{error:?}")
    };
    // Runs 1..=7 failed; the last five are 3..=7.
    let summaries: Vec<String> = last_failures
        .iter()
        .map(|failure| match failure.panic() {
            Some(payload) => format!("panic {}", payload.message()),
            None => format!("error {}", failure.error().unwrap()),
        })
        .collect();
    assert_eq!(
        summaries,
        [
            "error worker#3 broke".to_owned(),
            format!("panic {EXPECTED}: worker#4 blew up"),
            "error worker#5 broke".to_owned(),
            format!("panic {EXPECTED}: worker#6 blew up"),
            "error worker#7 broke".to_owned(),
        ]
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "task `worker` panicked: {EXPECTED}: worker#6 blew up"
        )),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// 4. Panics
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_panicking_static_child_is_restarted_and_counted_as_panicked() {
    quiet_expected_panics();
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .child(
            spec(&timeline, "parser", |run| {
                if run <= 2 {
                    Act::End(ms(100), Exit::Panic)
                } else {
                    Act::UntilStop
                }
            })
            .backoff(Backoff::new(ms(10), secs(1))),
        )
        .child(spec(&timeline, "neighbour", |_| Act::UntilStop))
        .run(async |sv| {
            sleep(secs(1)).await;
            sv.stats()
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start parser#1"),
            (0, "start neighbour#1"),
            (100, "panic parser#1"),
            (110, "start parser#2"),
            (210, "panic parser#2"),
            (230, "start parser#3"),
            (1_000, "stop neighbour#1"),
            (1_000, "stop parser#3"),
        ])
    );
    assert_eq!(counts(supervised.value.unwrap()), (4, 2, 0, 0, 2, 0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_dynamic_child_reports_its_payload() {
    quiet_expected_panics();
    Supervisor::builder()
        .run(async |sv| {
            let line = line!() + 1;
            let crash = sv.spawn("crash", async {
                panic!("{EXPECTED}: index out of range");
                #[allow(unreachable_code)]
                ()
            });
            let crash = crash.unwrap();
            assert_eq!(crash.name(), Some("crash"));
            assert_eq!(crash.location().line(), line);
            let exit = crash.join().await;
            assert!(exit.is_failure() && exit.is_panic());
            let ChildExit::Failed(failure) = &exit else {
                panic!("{exit}")
            };
            assert_eq!(
                failure.panic().unwrap().message(),
                format!("{EXPECTED}: index out of range")
            );
            assert_eq!(failure.task(), Some("crash"));
            assert_eq!(failure.location().line(), line);
            assert_eq!(
                exit.to_string(),
                format!("task `crash` panicked: {EXPECTED}: index out of range")
            );
            // The original payload is there for whoever wants to re-raise it.
            let payload = failure.panic().unwrap().take().unwrap();
            assert!(payload.downcast_ref::<String>().is_some());
            assert_eq!(counts(sv.stats()), (1, 0, 0, 0, 1, 0, 0));
        })
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// 5. Dynamic children
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn failing_dynamic_children_are_counted_and_cancel_no_one() {
    quiet_expected_panics();
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .name("jobs")
        .child(spec(&timeline, "static", |_| Act::UntilStop))
        .run(async |sv| {
            let steady = sv
                .spawn(
                    "steady",
                    act(timeline.clone(), "steady".into(), Act::UntilStop),
                )
                .unwrap();
            let ok = sv.spawn("ok", async { sleep(ms(100)).await }).unwrap();
            let err = sv
                .spawn("err", async {
                    sleep(ms(200)).await;
                    Err::<(), _>("bad input")
                })
                .unwrap();
            let boom = sv
                .spawn("boom", async {
                    sleep(ms(300)).await;
                    panic!("{EXPECTED}: boom");
                    #[allow(unreachable_code)]
                    Ok::<(), String>(())
                })
                .unwrap();
            assert_eq!(counts(sv.stats()), (5, 0, 0, 0, 0, 0, 5));

            assert!(matches!(ok.join().await, ChildExit::Completed));
            let exit = err.join().await;
            let ChildExit::Failed(failure) = &exit else {
                panic!("{exit}")
            };
            assert!(!exit.is_panic());
            let error = failure.error().unwrap();
            assert_eq!(error.downcast_ref::<&str>(), Some(&"bad input"));
            assert_eq!(exit.to_string(), "task `err` failed: bad input");
            let exit = boom.join().await;
            assert_eq!(
                exit.is_panic().then(|| exit.to_string()),
                Some(format!("task `boom` panicked: {EXPECTED}: boom"))
            );

            // Nobody else noticed.
            sleep(secs(1)).await;
            assert!(!steady.is_finished());
            assert!(!sv.is_shutting_down());
            assert_eq!(counts(sv.stats()), (5, 0, 1, 1, 1, 0, 2));
            sv.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start static#1"),
            (0, "start steady"),
            (1_300, "stop steady"),
            (1_300, "stop static#1"),
        ])
    );
    let sv = supervised.value.unwrap();
    assert_eq!(counts(sv.stats()), (5, 0, 3, 1, 1, 0, 0));
    // The failures were the children's own: nothing was recorded on the
    // supervisor, and the shutdown only saw the two survivors.
    assert!(supervised.report.failures().is_empty());
    assert_eq!(
        roles(&supervised.report),
        [
            ("static".to_owned(), ChildRole::Static),
            ("steady".to_owned(), ChildRole::Dynamic),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_finished_dynamic_children_leave_nothing_behind() {
    quiet_expected_panics();
    let supervised = Supervisor::builder()
        .name("ten-thousand-jobs")
        .child(ChildSpec::new("listener", || async {
            tethered::stop_requested().await;
        }))
        .run(async |sv| {
            for n in 0..10_000u32 {
                sv.spawn(format!("job-{n}"), async move {
                    tokio::task::yield_now().await;
                    match n % 100 {
                        0 => panic!("{EXPECTED}: job {n}"),
                        1..=9 => Err(format!("job {n} failed")),
                        _ => Ok(()),
                    }
                })
                .unwrap();
            }
            let spawned = sv.stats();
            // Every job is ready at once: they all end before the clock moves.
            sleep(ms(1)).await;
            let entry = tree_entry("ten-thousand-jobs").expect("the supervisor is in the tree");
            (spawned, sv.stats(), entry)
        })
        .await
        .unwrap();
    let (spawned, finished, entry) = supervised.value.unwrap();
    assert_eq!(spawned.live, 10_001);
    assert_eq!(counts(finished), (10_001, 0, 9_000, 900, 100, 0, 1));
    // Only the static child is left under the supervisor.
    assert_eq!(child_names(&entry), ["listener"]);
    assert!(matches!(entry.state(), EntryState::Running));
    // And the shutdown knew of nothing else.
    assert_eq!(supervised.report.children().len(), 1);
    assert!(tree_entry("ten-thousand-jobs").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_child_handle_can_stop_and_cancel_it() {
    let timeline = Timeline::new();
    Supervisor::builder()
        .run(async |sv| {
            let polite = sv
                .spawn(
                    "polite",
                    act(timeline.clone(), "polite".into(), Act::Linger(ms(50))),
                )
                .unwrap();
            let deaf = sv
                .spawn("deaf", act(timeline.clone(), "deaf".into(), Act::Deaf))
                .unwrap();
            let gone = sv
                .spawn("gone", act(timeline.clone(), "gone".into(), Act::Deaf))
                .unwrap();
            sleep(ms(100)).await;
            assert!(matches!(
                polite.stop_and_wait("enough", secs(1)).await,
                ChildExit::Completed
            ));
            let exit = deaf.stop_and_wait("enough", secs(1)).await;
            assert_eq!(cancel_reason(&exit).message(), Some("enough"));
            let exit = gone.cancel_and_wait(CancelKind::Shutdown).await;
            assert_eq!(cancel_reason(&exit).kind(), CancelKind::Shutdown);
            // A cancelled dynamic child is not restarted.
            assert_eq!(counts(sv.stats()), (3, 0, 1, 0, 0, 2, 0));
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start polite"),
            (0, "start deaf"),
            (0, "start gone"),
            (100, "stop polite"),
            (150, "done polite"),
            (1_150, "cancel deaf"),
            (1_150, "cancel gone"),
        ])
    );
}

// ---------------------------------------------------------------------------
// 6. Shutdown
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_stop_is_cancelled_exactly_at_grace() {
    let timeline = Timeline::new();
    let probe = Probe::new();
    let call = Arc::new(Mutex::new(None));
    let supervised = Supervisor::builder()
        .name("svc")
        .grace(secs(2))
        .cancel_timeout(secs(5))
        .child(spec(&timeline, "deaf-static", |_| Act::Deaf))
        .run(async |sv| {
            sv.spawn("deaf", probe.hang()).unwrap();
            let deploy = CancelReason::new(CancelKind::Shutdown).with_message("deploy");
            *call.lock().unwrap() = Some(shutdown_at(&timeline, sv, secs(1), deploy));
            tethered::stop_requested()
                .await
                .message()
                .map(str::to_owned)
        })
        .await
        .unwrap();
    assert_eq!(supervised.value.unwrap().as_deref(), Some("deploy"));
    // Asked at 1s, cancelled when the 2s grace is over.
    assert_eq!(probe.dropped_at(), Some(timeline.start + secs(3)));
    // The cancellation says why it came (the grace ran out) and what it
    // follows from (the shutdown's reason).
    let reason = probe.reason();
    assert_eq!(reason.kind(), CancelKind::Timeout);
    assert_eq!(
        reason.message(),
        Some("still running when the shutdown's grace of 2s ran out")
    );
    let cause = reason.cause().unwrap();
    assert_eq!(cause.kind(), CancelKind::Shutdown);
    assert_eq!(cause.message(), Some("deploy"));
    assert!(probe.state().cancelled);
    // Then the static child, asked at 3s, with a grace of its own.
    assert_eq!(
        timeline.events(),
        expect(&[(0, "start deaf-static#1"), (5_000, "cancel deaf-static#1")])
    );

    let call = call.lock().unwrap().take().unwrap();
    let (returned_at, report) = call.await.unwrap();
    assert_eq!(returned_at, secs(5));
    assert_eq!(report.took(), secs(4));
    assert!(report.reason().same_as(supervised.report.reason()));
    assert!(
        reason.cause().unwrap().same_as(report.reason()),
        "the shutdown's reason reaches children as is, as the cause"
    );
    for (name, after_shutdown, why) in [
        ("deaf", secs(2), "the shutdown's grace of 2s"),
        ("deaf-static", secs(4), "its shutdown budget of 2s"),
    ] {
        let child = report.child(name).unwrap();
        assert_eq!(after(child), after_shutdown, "{child}");
        let reason = cancel_reason(child.exit().unwrap());
        assert_eq!(
            reason.message(),
            Some(format!("still running when {why} ran out").as_str())
        );
        assert_eq!(reason.cause().unwrap().message(), Some("deploy"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_shield_that_never_ends_is_a_straggler_and_shutdown_returns_at_grace_plus_cancel_timeout()
{
    let timeline = Timeline::new();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let supervised = Supervisor::builder()
        .name("flusher-sv")
        .grace(secs(1))
        .cancel_timeout(secs(2))
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .run(async |sv| {
            sleep(ms(500)).await;
            let line = line!() + 1;
            sv.shield("flush", async move {
                let _ = released.await;
            })
            .unwrap();
            sleep(ms(500)).await;
            line
        })
        .await
        .unwrap();
    let line = supervised.value.unwrap();
    assert_eq!(timeline.now(), secs(4), "1s + grace + cancel_timeout");
    let report = supervised.report;
    assert_eq!(report.took(), secs(3));
    let stragglers: Vec<&ChildReport> = report.stragglers().collect();
    assert_eq!(stragglers.len(), 1);
    let flush = stragglers[0];
    assert_eq!(
        (flush.name(), flush.role()),
        (Some("flush"), ChildRole::Shield)
    );
    assert_eq!(flush.location().line(), line);
    assert!(flush.exit().is_none());
    let ChildEnd::Straggler {
        state, running_for, ..
    } = flush.end()
    else {
        panic!("{flush}")
    };
    assert_eq!(*running_for, ms(3_500));
    let EntryState::Stopping(reason) = state else {
        panic!("{state:?}")
    };
    assert_eq!(reason.kind(), CancelKind::ScopeExit);
    // The shield used up the grace; the static child, asked to stop then,
    // had a grace of its own, and stopped.
    assert_eq!(
        timeline.events(),
        expect(&[(0, "start db#1"), (2_000, "stop db#1")])
    );
    let db = report.child("db").unwrap();
    assert_eq!(after(db), secs(1));
    assert!(matches!(db.exit(), Some(ChildExit::Completed)), "{db}");
    assert_eq!(
        report.children().last().unwrap().name(),
        Some("flush"),
        "stragglers last"
    );

    let text = report.to_string();
    assert!(
        text.starts_with(
            "supervisor `flusher-sv` shut down in 3s (scope exited: the supervisor's body returned"
        ),
        "{text}"
    );
    assert!(text.contains("; 2 children, 1 still running"), "{text}");
    assert!(
        text.contains("shield `flush` (spawned at ")
            && text.contains("): straggler: STILL RUNNING (stopping: "),
        "{text}"
    );
    assert!(text.contains("for 3.5s"), "{text}");
    assert!(text.contains("static `db` (spawned at "), "{text}");
    assert!(
        text.contains("): stopped cleanly, after 1s; started once"),
        "{text}"
    );

    // The straggler stays tethered: the supervisor is still in the tree,
    // holding it, until it ends.
    let entry = tree_entry("flusher-sv").expect("still in the tree");
    assert_eq!(child_names(&entry), ["flush"]);
    release.send(()).unwrap();
    sleep(ms(1)).await;
    assert!(tree_entry("flusher-sv").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_child_holding_a_shielded_scope_is_a_straggler_in_cancelling_state() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .name("nested-shield")
        .grace(secs(1))
        .cancel_timeout(secs(1))
        .run(async |sv| {
            let timeline = timeline.clone();
            sv.spawn("writer", async move {
                Scope::run(async |scope| {
                    let timeline = timeline.clone();
                    scope.shield(async move {
                        sleep(secs(10)).await;
                        timeline.push("shield done");
                    });
                    pending::<()>().await
                })
                .await
                .map_err(|error| error.to_string())
            })
            .unwrap();
            sleep(secs(1)).await;
        })
        .await
        .unwrap();
    assert_eq!(timeline.now(), secs(3));
    let report = supervised.report;
    let writer = report.child("writer").unwrap();
    assert_eq!(writer.role(), ChildRole::Dynamic);
    let ChildEnd::Straggler {
        state, running_for, ..
    } = writer.end()
    else {
        panic!("{writer}")
    };
    assert_eq!(*running_for, secs(3));
    let EntryState::Cancelling(reason) = state else {
        panic!("{state:?}")
    };
    assert_eq!(reason.kind(), CancelKind::Timeout);
    assert_eq!(reason.root().kind(), CancelKind::ScopeExit);
    assert_eq!(report.stragglers().count(), 1);
    assert!(report.to_string().contains("1 still running"));

    // Still tethered until the shield is done.
    assert!(tree_entry("nested-shield").is_some());
    sleep(secs(8)).await;
    assert_eq!(timeline.at("shield done"), 10_000);
    assert!(tree_entry("nested-shield").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_shield_that_finishes_within_grace_is_awaited_before_the_static_children_stop() {
    let timeline = Timeline::new();
    let written = Flag::new();
    let supervised = Supervisor::builder()
        .grace(secs(5))
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .run(async |sv| {
            let (timeline, written) = (timeline.clone(), written.clone());
            sv.shield("flush", async move {
                // Sees the stop, and finishes its write anyway.
                tethered::stop_requested().await;
                timeline.push("flush asked to stop");
                sleep(ms(1_500)).await;
                written.set();
                timeline.push("flush written");
            })
            .unwrap();
            sleep(secs(1)).await;
        })
        .await
        .unwrap();
    assert!(written.get());
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start db#1"),
            (1_000, "flush asked to stop"),
            (2_500, "flush written"),
            // The shield may need the static children: they stop after it.
            (2_500, "stop db#1"),
        ])
    );
    let report = supervised.report;
    assert_eq!(report.took(), ms(1_500));
    let flush = report.child("flush").unwrap();
    assert_eq!(flush.role(), ChildRole::Shield);
    assert!(matches!(flush.exit(), Some(ChildExit::Completed)));
    assert_eq!(after(flush), ms(1_500));
    // Children in the order they ended.
    let names: Vec<_> = report
        .children()
        .iter()
        .map(|c| c.name().unwrap())
        .collect();
    assert_eq!(names, ["flush", "db"]);
}

#[tokio::test(start_paused = true)]
async fn a_shield_is_not_cancelled_past_grace_and_may_finish_during_the_cancel_timeout() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .grace(secs(1))
        .cancel_timeout(secs(5))
        .run(async |sv| {
            let log = timeline.clone();
            sv.shield("slow-flush", async move {
                sleep(secs(3)).await;
                log.push("flushed");
            })
            .unwrap();
            sv.spawn("deaf", act(timeline.clone(), "deaf".into(), Act::Deaf))
                .unwrap();
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start deaf"),
            (1_000, "cancel deaf"),
            (3_000, "flushed")
        ])
    );
    let report = supervised.report;
    assert_eq!(report.took(), secs(3));
    assert!(matches!(
        report.child("slow-flush").unwrap().exit(),
        Some(ChildExit::Completed)
    ));
    assert!(report.stragglers().next().is_none());
}

#[tokio::test(start_paused = true)]
async fn shutdown_twice_gives_both_callers_the_same_report_with_the_first_reason() {
    let timeline = Timeline::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let supervised = Supervisor::builder()
        .grace(secs(1))
        .child(spec(&timeline, "worker", |_| Act::Linger(ms(300))))
        .run(async |sv| {
            let first = CancelReason::new(CancelKind::Signal).with_message("SIGTERM");
            let second = CancelReason::new(CancelKind::Signal).with_message("SIGINT");
            calls.lock().unwrap().extend([
                shutdown_at(&timeline, sv, secs(2), first),
                shutdown_at(&timeline, sv, ms(2_100), second),
            ]);
            tethered::stop_requested().await;
            assert!(sv.is_shutting_down());
        })
        .await
        .unwrap();
    let calls: Vec<ShutdownCall> = std::mem::take(&mut *calls.lock().unwrap());
    let mut reports = Vec::new();
    for call in calls {
        reports.push(call.await.unwrap());
    }
    // Both return when the shutdown is over, whenever they asked.
    assert_eq!(reports[0].0, ms(2_300));
    assert_eq!(reports[1].0, ms(2_300));
    let (first, second) = (&reports[0].1, &reports[1].1);
    assert!(first.reason().same_as(second.reason()));
    assert!(first.reason().same_as(supervised.report.reason()));
    assert_eq!(first.reason().message(), Some("SIGTERM"));
    assert_eq!(first.took(), ms(300));
    assert_eq!(first.to_string(), second.to_string());
    assert_eq!(timeline.at("stop worker#1"), 2_000);
    assert_eq!(timeline.at("done worker#1"), 2_300);
}

#[tokio::test(start_paused = true)]
async fn shutdown_from_a_signal_task_cancels_a_body_that_does_not_listen() {
    let timeline = Timeline::new();
    let (send, receive) = tokio::sync::oneshot::channel::<Supervisor>();
    // A signal handler, outside the supervisor, that gets a clone of it.
    let signal = tokio::spawn(async move {
        let sv = receive.await.unwrap();
        sleep(secs(3)).await;
        let report = sv.shutdown(CancelKind::Signal).await;
        (Instant::now(), report)
    });
    let body_dropped = Probe::new();
    let supervised: Supervised<&str> = Supervisor::builder()
        .name("daemon")
        .grace(ms(500))
        .child(spec(&timeline, "worker", |_| Act::UntilStop))
        .run(async |sv| {
            send.send(sv.clone()).unwrap();
            let _guard = body_dropped.guard();
            pending::<()>().await;
            "unreachable"
        })
        .await
        .unwrap();
    assert!(supervised.value.is_none(), "the body was cancelled");
    assert_eq!(timeline.now(), ms(3_500));
    assert_eq!(body_dropped.dropped_at(), Some(timeline.start + ms(3_500)));
    let (returned_at, report) = signal.await.unwrap();
    assert_eq!(returned_at, timeline.start + ms(3_500));
    assert_eq!(report.reason().kind(), CancelKind::Signal);
    assert_eq!(report.reason().location().file(), file!());
    assert!(report.reason().same_as(supervised.report.reason()));
    // The body used up the grace and was cancelled; the static child,
    // asked to stop then, with a grace of its own, stopped.
    assert_eq!(
        timeline.events(),
        expect(&[(0, "start worker#1"), (3_500, "stop worker#1")])
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_from_a_signal_task_keeps_the_value_of_a_body_that_listens() {
    let timeline = Timeline::new();
    let (send, receive) = tokio::sync::oneshot::channel::<Supervisor>();
    let signal = tokio::spawn(async move {
        let sv = receive.await.unwrap();
        sleep(secs(3)).await;
        sv.shutdown("operator pressed stop").await
    });
    let supervised = Supervisor::builder()
        .grace(ms(500))
        .child(spec(&timeline, "worker", |_| Act::UntilStop))
        .run(async |sv| {
            send.send(sv.clone()).unwrap();
            let reason = tethered::stop_requested().await;
            timeline.push("body stopping");
            sleep(ms(100)).await;
            format!("served until {}", reason.message().unwrap())
        })
        .await
        .unwrap();
    assert_eq!(
        supervised.value.as_deref(),
        Some("served until operator pressed stop")
    );
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start worker#1"),
            (3_000, "body stopping"),
            // The body is stopped with the dynamic children, before the
            // static ones.
            (3_100, "stop worker#1"),
        ])
    );
    let report = signal.await.unwrap();
    assert_eq!(report.took(), ms(100));
    assert_eq!(report.reason().kind(), CancelKind::Explicit);
}

#[tokio::test(start_paused = true)]
async fn static_children_stop_last_declared_first_each_waited_for() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .grace(secs(10))
        .child(spec(&timeline, "a", |_| Act::Linger(ms(100))))
        .child(spec(&timeline, "b", |_| Act::Linger(ms(200))))
        .child(spec(&timeline, "c", |_| Act::Linger(ms(300))))
        .run(async |_| sleep(secs(1)).await)
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start a#1"),
            (0, "start b#1"),
            (0, "start c#1"),
            (1_000, "stop c#1"),
            (1_300, "done c#1"),
            (1_300, "stop b#1"),
            (1_500, "done b#1"),
            (1_500, "stop a#1"),
            (1_600, "done a#1"),
        ])
    );
    let report = supervised.report;
    let ended: Vec<_> = report
        .children()
        .iter()
        .map(|child| (child.name().unwrap(), after(child)))
        .collect();
    assert_eq!(ended, [("c", ms(300)), ("b", ms(500)), ("a", ms(600))]);
    assert_eq!(report.took(), ms(600));
}

#[tokio::test(start_paused = true)]
async fn a_static_child_that_ignores_the_stop_uses_its_own_time_not_its_siblings() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .grace(secs(1))
        .child(spec(&timeline, "first", |_| Act::UntilStop))
        .child(spec(&timeline, "deaf", |_| Act::Deaf))
        .run(async |_| {})
        .await
        .unwrap();
    // Each static child gets its own budget (the grace, by default):
    // `deaf`, stopped first, is cancelled when its second is up; `first`
    // is then asked, and stops.
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start first#1"),
            (0, "start deaf#1"),
            (1_000, "cancel deaf#1"),
            (1_000, "stop first#1"),
        ])
    );
    let report = supervised.report;
    assert_eq!(report.took(), secs(1));
    assert!(matches!(
        report.child("first").unwrap().exit(),
        Some(ChildExit::Completed)
    ));
    assert!(matches!(
        report.child("deaf").unwrap().exit(),
        Some(ChildExit::Cancelled(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn each_static_child_stops_within_its_own_shutdown_budget_last_declared_first() {
    let timeline = Timeline::new();
    let slow = |_| Act::Linger(ms(1_500));
    let builder = Supervisor::builder()
        .grace(secs(1))
        .cancel_timeout(secs(2))
        // Needs 1.5 s to stop and gets 2 s: stops cleanly.
        .child(spec(&timeline, "db", slow).shutdown(ChildShutdown::Timeout(secs(2))))
        // Needs 1.5 s and gets 1 s (the grace): cancelled.
        .child(spec(&timeline, "cache", slow))
        // Cancelled at once, never asked to stop.
        .child(spec(&timeline, "metrics", |_| Act::UntilStop).shutdown(ChildShutdown::Brutal))
        // Waited for as long as it takes.
        .child(
            spec(&timeline, "index", |_| Act::Linger(secs(4))).shutdown(ChildShutdown::Infinity),
        );
    assert_eq!(builder.shutdown_budget(), None, "`index` has no limit");
    let supervised = builder.run(async |_| {}).await.unwrap();
    assert_eq!(
        timeline.events_cancels_sorted(),
        expect(&[
            (0, "start db#1"),
            (0, "start cache#1"),
            (0, "start metrics#1"),
            (0, "start index#1"),
            (0, "stop index#1"),
            (4_000, "done index#1"),
            (4_000, "cancel metrics#1"),
            (4_000, "stop cache#1"),
            (5_000, "cancel cache#1"),
            (5_000, "stop db#1"),
            (6_500, "done db#1"),
        ])
    );
    let report = supervised.report;
    assert_eq!(report.took(), ms(6_500));
    let exits: Vec<(&str, bool)> = report
        .children()
        .iter()
        .map(|child| {
            (
                child.name().unwrap(),
                matches!(child.exit(), Some(ChildExit::Completed)),
            )
        })
        .collect();
    assert_eq!(
        exits,
        [
            ("index", true),
            ("metrics", false),
            ("cache", false),
            ("db", true)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_sibling_stopped_for_a_restart_gets_its_own_shutdown_budget() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .grace(secs(1))
        .child(
            spec(&timeline, "writer", |_| Act::Linger(ms(1_500)))
                .shutdown(ChildShutdown::Timeout(secs(3))),
        )
        .child(
            spec(
                &timeline,
                "reader",
                first_then(Act::End(secs(1), Exit::Fail), Act::UntilStop),
            )
            .backoff(Backoff::none()),
        )
        .run(async |_| sleep(secs(5)).await)
        .await
        .unwrap();
    // At 1 s `reader` fails: `writer` is asked to stop and, with 3 s to do
    // it, finishes its 1.5 s of work; both restart at 2.5 s.
    let events = timeline.events();
    assert_eq!(
        events[..6],
        expect(&[
            (0, "start writer#1"),
            (0, "start reader#1"),
            (1_000, "fail reader#1"),
            (1_000, "stop writer#1"),
            (2_500, "done writer#1"),
            (2_500, "start writer#2"),
        ])[..]
    );
    assert_eq!(supervised.value, Some(()));
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_budget_adds_up_grace_each_static_child_and_the_cancel_timeout() {
    let builder = Supervisor::builder()
        .grace(secs(5))
        .cancel_timeout(secs(10))
        .child(ChildSpec::new("db", || async {}).shutdown(ChildShutdown::Timeout(secs(2))))
        .child(ChildSpec::new("cache", || async {}).shutdown(ChildShutdown::Brutal))
        .child(ChildSpec::new("api", || async {}));
    assert_eq!(builder.shutdown_budget(), Some(secs(22)));
    let budget = builder
        .run(async |sv| {
            sv.spawn_with(ChildSpec::new("late", || async {
                tethered::stop_requested().await;
            }))
            .unwrap();
            tokio::task::yield_now().await;
            sv.shutdown_budget()
        })
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(budget, Some(secs(27)), "an adopted child counts too");
    // Saturating, not overflowing.
    let huge = Supervisor::builder()
        .grace(Duration::MAX)
        .child(ChildSpec::new("a", || async {}));
    assert_eq!(huge.shutdown_budget(), Some(Duration::MAX));
}

// ---------------------------------------------------------------------------
// 7. The body
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn static_children_are_running_before_the_body_is_first_polled() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .child(spec(&timeline, "a", |_| Act::UntilStop))
        .child(spec(&timeline, "b", |_| Act::UntilStop))
        // Returns without ever awaiting.
        .run(async |sv| sv.stats())
        .await
        .unwrap();
    assert_eq!(counts(supervised.value.unwrap()), (2, 0, 0, 0, 0, 0, 2));
    // Started, then stopped by the shutdown the body's return began.
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start a#1"),
            (0, "start b#1"),
            (0, "stop b#1"),
            (0, "stop a#1"),
        ])
    );
    assert_eq!(roles(&supervised.report).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_body_returning_shuts_down_with_a_scope_exit_reason() {
    let timeline = Timeline::new();
    let run_line = line!() + 4;
    let supervised = Supervisor::builder()
        .name("api")
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .run(async |_| {
            sleep(secs(2)).await;
            7
        })
        .await
        .unwrap();
    assert_eq!(supervised.value, Some(7));
    let reason = supervised.report.reason();
    assert_eq!(reason.kind(), CancelKind::ScopeExit);
    assert_eq!(reason.message(), Some("the supervisor's body returned"));
    assert_eq!(reason.origin(), Some("api"));
    assert_eq!(
        (reason.location().file(), reason.location().line()),
        (file!(), run_line)
    );
    assert_eq!(timeline.at("stop db#1"), 2_000);
    assert_eq!(supervised.report.supervisor(), Some("api"));
}

#[tokio::test(start_paused = true)]
async fn the_body_panicking_fails_the_supervisor_after_shutting_its_children_down() {
    quiet_expected_panics();
    let timeline = Timeline::new();
    let error: SupervisorError = Supervisor::builder()
        .name("api")
        .grace(secs(1))
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .child(spec(&timeline, "deaf", |_| Act::Deaf))
        .run(async |sv| {
            sv.spawn(
                "request",
                act(timeline.clone(), "request".into(), Act::Linger(ms(100))),
            )
            .unwrap();
            sleep(secs(1)).await;
            panic!("{EXPECTED}: body gave up");
        })
        .await
        .unwrap_err();
    let SupervisorErrorKind::BodyPanicked(payload) = error.kind() else {
        panic!("{error:?}")
    };
    assert_eq!(payload.message(), format!("{EXPECTED}: body gave up"));
    assert_eq!(error.child(), None);
    assert_eq!(
        error.to_string(),
        format!("supervisor `api` failed: its body panicked: {EXPECTED}: body gave up")
    );
    let report = error.report();
    assert_eq!(report.reason().kind(), CancelKind::ScopeExit);
    // The children are told what the panic said.
    assert_eq!(
        report.reason().message(),
        Some(&*format!(
            "the supervisor's body panicked: {EXPECTED}: body gave up"
        ))
    );
    // `deaf` uses up its own grace and is cancelled; `db`, asked then,
    // stops.
    assert_eq!(
        timeline.events_cancels_sorted(),
        expect(&[
            (0, "start db#1"),
            (0, "start deaf#1"),
            (0, "start request"),
            (1_000, "stop request"),
            (1_100, "done request"),
            (2_100, "cancel deaf#1"),
            (2_100, "stop db#1"),
        ])
    );
    let request = report.children().first().unwrap();
    assert_eq!((request.name(), after(request)), (Some("request"), ms(100)));
    assert_eq!(report.children().len(), 3);
    let deaf = report.child("deaf").unwrap();
    assert_eq!(after(deaf), ms(1_100), "{deaf}");
    let reason = cancel_reason(deaf.exit().unwrap());
    assert_eq!(reason.kind(), CancelKind::Timeout);
    assert!(reason.cause().unwrap().same_as(report.reason()));
    let db = report.child("db").unwrap();
    assert_eq!(after(db), ms(1_100), "{db}");
    assert!(matches!(db.exit(), Some(ChildExit::Completed)), "{db}");
}

// ---------------------------------------------------------------------------
// 8. Nesting
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn cancelling_the_enclosing_scope_stops_then_cancels_the_supervisors_children() {
    let timeline = Timeline::new();
    let result = Scope::builder()
        .name("outer")
        .timeout(secs(2))
        .run(async |_| {
            Supervisor::builder()
                .name("inner")
                .grace(secs(1))
                .child(spec(&timeline, "polite", |_| Act::UntilStop))
                .child(spec(&timeline, "slow", |_| Act::Linger(secs(5))))
                .run(async |sv| {
                    sv.spawn(
                        "job",
                        act(timeline.clone(), "job".into(), Act::Linger(ms(300))),
                    )
                    .unwrap();
                    pending::<()>().await
                })
                .await
        })
        .await;
    // The scope waited for the supervisor's whole shutdown.
    assert_eq!(timeline.now(), ms(3_300));
    let error = result.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(
        timeline.events_cancels_sorted(),
        sort_cancel_ties(expect(&[
            (0, "start polite#1"),
            (0, "start slow#1"),
            (0, "start job"),
            // Stop first: the dynamic child, then the static ones, last
            // declared first, each cancelled only once its own grace is
            // over.
            (2_000, "stop job"),
            (2_300, "done job"),
            (2_300, "stop slow#1"),
            (3_300, "cancel slow#1"),
            (3_300, "stop polite#1"),
        ]))
    );
    assert!(tree_entry("inner").is_none());
}

#[tokio::test(start_paused = true)]
async fn the_enclosing_scope_sees_its_timeout_through_the_stop_reason() {
    let start = Instant::now();
    let probe = Probe::new();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let _ = Scope::builder()
        .name("outer")
        .timeout(secs(1))
        .run(async |_| {
            Supervisor::builder()
                .name("inner")
                .grace(ms(500))
                .run(async |sv| {
                    let reasons = reasons.clone();
                    let hang = probe.hang();
                    sv.spawn("listener", async move {
                        let stop = tethered::stop_requested().await;
                        reasons.lock().unwrap().push(stop);
                        hang.await;
                    })
                    .unwrap();
                    pending::<()>().await
                })
                .await
        })
        .await;
    let stop = reasons.lock().unwrap()[0].clone();
    assert_eq!(stop.kind(), CancelKind::ParentCancelled);
    assert_eq!(stop.root().kind(), CancelKind::Timeout);
    assert_eq!(probe.dropped_at(), Some(start + ms(1_500)));
    assert_eq!(probe.reason().root().kind(), CancelKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_scope_inside_a_supervised_child_works_and_is_stopped_with_it() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .name("svc")
        .run(async |sv| {
            // A child whose scope succeeds.
            let sum = Arc::new(AtomicU32::new(0));
            let total = sum.clone();
            let adder = sv
                .spawn("adder", async move {
                    let value = Scope::run(async |scope| {
                        let parts: Vec<_> = (1..=4u32)
                            .map(|n| scope.spawn(async move { n * 10 }))
                            .collect();
                        let mut value = 0;
                        for part in parts {
                            value += part.join().await.unwrap();
                        }
                        value
                    })
                    .await?;
                    total.store(value, Ordering::SeqCst);
                    Ok::<(), ScopeError>(())
                })
                .unwrap();
            assert!(matches!(adder.join().await, ChildExit::Completed));
            assert_eq!(sum.load(Ordering::SeqCst), 100);

            // A child whose scope fails: the child fails, with the scope's error.
            let broken = sv
                .spawn("broken", async {
                    Scope::run(async |scope| {
                        scope.spawn_fallible_named("item-2", async { Err::<(), _>("corrupt") });
                        pending::<()>().await
                    })
                    .await
                })
                .unwrap();
            let exit = broken.join().await;
            let ChildExit::Failed(failure) = &exit else {
                panic!("{exit}")
            };
            let scope = failure
                .error()
                .unwrap()
                .downcast_ref::<ScopeError>()
                .unwrap();
            assert_eq!(scope.failures()[0].task(), Some("item-2"));

            // A child with a scope whose task waits for the stop request.
            let log = timeline.clone();
            sv.spawn("server", async move {
                Scope::run(async |scope| {
                    let log = log.clone();
                    scope.spawn(async move {
                        let reason = tethered::stop_requested().await;
                        log.push(format!("grandchild stopped: {}", reason.message().unwrap()));
                    });
                })
                .await
            })
            .unwrap();
            sleep(secs(1)).await;
            let stats = sv.stats();
            // Asked for from the body, not awaited there (see
            // `a_body_awaiting_its_own_shutdown_is_cancelled_at_grace`).
            drop(sv.shutdown("maintenance"));
            tethered::stop_requested().await;
            stats
        })
        .await
        .unwrap();
    assert_eq!(counts(supervised.value.unwrap()), (3, 0, 1, 1, 0, 0, 1));
    assert_eq!(
        timeline.events(),
        expect(&[(1_000, "grandchild stopped: maintenance")])
    );
    assert!(matches!(
        supervised.report.child("server").unwrap().exit(),
        Some(ChildExit::Completed)
    ));
}

#[tokio::test(start_paused = true)]
async fn an_intensity_failure_propagates_with_the_question_mark() {
    /// A service fn: its supervisor's failure is its own.
    async fn service(timeline: Timeline) -> std::io::Result<u32> {
        Supervisor::builder()
            .name("service")
            .intensity(1, secs(10))
            .child(spec(&timeline, "db", |_| Act::End(ms(10), Exit::Fail)).backoff(Backoff::none()))
            .run(async |_| tethered::stop_requested().await)
            .await?;
        Ok(1)
    }

    let timeline = Timeline::new();
    let error = service(timeline.clone()).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::Other);
    let inner = error
        .get_ref()
        .unwrap()
        .downcast_ref::<SupervisorError>()
        .unwrap();
    assert_eq!(inner.child(), Some("db"));
    assert_eq!(timeline.times_of("fail db#"), [10, 20]);

    // Inside a scope's task, it is the scope's failure.
    let timeline = Timeline::new();
    let scope_error = Scope::run(async |scope| {
        scope.spawn_fallible_named("service", service(timeline.clone()));
        pending::<()>().await
    })
    .await
    .unwrap_err();
    let failure = &scope_error.failures()[0];
    assert_eq!(failure.task(), Some("service"));
    let io = failure
        .error()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert!(
        io.to_string()
            .starts_with("supervisor `service` failed: child `db`"),
        "{io}"
    );
    assert_eq!(
        scope_error.reason().unwrap().kind(),
        CancelKind::SiblingFailed
    );
}

#[tethered::scoped]
async fn scoped_service(timeline: Timeline) -> std::io::Result<()> {
    Supervisor::builder()
        .name("scoped-service")
        .intensity(0, secs(1))
        .child(spec(&timeline, "db", |_| Act::End(ms(10), Exit::Fail)))
        .run(async |_| tethered::stop_requested().await)
        .await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_intensity_failure_is_the_error_of_a_scoped_fn() {
    let error = scoped_service(Timeline::new()).await.unwrap_err();
    let inner = error
        .get_ref()
        .unwrap()
        .downcast_ref::<SupervisorError>()
        .unwrap();
    assert_eq!(inner.child(), Some("db"));
    assert_eq!(inner.report().supervisor(), Some("scoped-service"));
}

// ---------------------------------------------------------------------------
// 9. Spawning during and after the shutdown; spawn_with
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn spawning_after_the_shutdown_began_is_refused_and_the_future_never_runs() {
    let late = Probe::new();
    let late_shield = Probe::new();
    let factory_calls = Arc::new(AtomicU32::new(0));
    let supervised = Supervisor::builder()
        .name("closing")
        .run(async |sv| {
            let outside = sv.clone();
            drop(sv.shutdown("closing"));
            assert!(sv.is_shutting_down());
            tethered::stop_requested().await;
            assert!(sv.is_shutting_down());
            let error: SpawnError = sv.spawn("late", late.hang()).unwrap_err();
            assert_eq!(
                error.to_string(),
                "scope `closing` is closing or closed; the task was not started"
            );
            sv.shield("late-shield", late_shield.hang()).unwrap_err();
            let calls = factory_calls.clone();
            sv.spawn_with(ChildSpec::new("late-static", move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {}
            }))
            .unwrap_err();
            // From a task outside the supervisor too.
            let probe = Probe::new();
            let from_outside = probe.clone();
            tokio::spawn(async move { outside.spawn("later", from_outside.hang()).map(drop) })
                .await
                .unwrap()
                .unwrap_err();
            assert!(!probe.polled() && probe.dropped());
            sv.stats()
        })
        .await
        .unwrap();
    for probe in [&late, &late_shield] {
        assert!(!probe.polled(), "a refused future is never polled");
        assert!(probe.dropped(), "a refused future is dropped at once");
    }
    sleep(secs(1)).await;
    assert_eq!(factory_calls.load(Ordering::SeqCst), 0);
    // Refused spawns are counted as started and cancelled at once (so that
    // `live` stays right).
    let stats = supervised.value.unwrap();
    assert_eq!(counts(stats), (3, 0, 0, 0, 0, 3, 0));
    // The report only knows children alive when the shutdown began: none.
    assert!(
        supervised.report.children().is_empty(),
        "{}",
        supervised.report
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_spawning_during_the_shutdown_is_refused_and_reported_as_itself() {
    let supervised = Supervisor::builder()
        .name("closing")
        .run(async |sv| {
            let sv2 = sv.clone();
            sv.spawn("spawner", async move {
                tethered::stop_requested().await;
                let refused = sv2.shield("late", async {}).is_err();
                sleep(ms(100)).await;
                assert!(refused);
            })
            .unwrap();
        })
        .await
        .unwrap();
    let report = supervised.report;
    assert_eq!(roles(&report), [("spawner".to_owned(), ChildRole::Dynamic)]);
    let spawner = report.child("spawner").unwrap();
    assert!(
        matches!(spawner.exit(), Some(ChildExit::Completed)),
        "{spawner}"
    );
    assert_eq!(after(spawner), ms(100));
}

#[tokio::test(start_paused = true)]
async fn spawn_with_adds_a_restartable_child_declared_last() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .strategy(Strategy::RestForOne)
        .child(spec(&timeline, "a", |_| Act::UntilStop))
        .child(
            spec(
                &timeline,
                "b",
                first_then(Act::End(secs(2), Exit::Fail), Act::UntilStop),
            )
            .backoff(Backoff::new(ms(100), secs(1))),
        )
        .run(async |sv| {
            sleep(secs(1)).await;
            sv.spawn_with(
                spec(
                    &timeline,
                    "late",
                    first_then(Act::End(ms(500), Exit::Fail), Act::UntilStop),
                )
                .restart(Restart::Transient)
                .backoff(Backoff::new(ms(50), secs(1))),
            )
            .unwrap();
            sleep(secs(3)).await;
            sv.stats()
        })
        .await
        .unwrap();
    assert_eq!(
        timeline.events(),
        expect(&[
            (0, "start a#1"),
            (0, "start b#1"),
            (1_000, "start late#1"),
            // Its own failure: restarted alone (it has no one after it).
            (1_500, "fail late#1"),
            (1_550, "start late#2"),
            // `b` fails: rest for one restarts `b` and what comes after it,
            // `late` included.
            (2_000, "fail b#1"),
            (2_000, "stop late#2"),
            (2_100, "start b#2"),
            (2_100, "start late#3"),
            // Shutdown: last declared first.
            (4_000, "stop late#3"),
            (4_000, "stop b#2"),
            (4_000, "stop a#1"),
        ])
    );
    assert_eq!(counts(supervised.value.unwrap()), (6, 3, 1, 2, 0, 0, 3));
    assert_eq!(
        roles(&supervised.report),
        [
            ("a".to_owned(), ChildRole::Static),
            ("b".to_owned(), ChildRole::Static),
            ("late".to_owned(), ChildRole::Static),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn spawn_with_a_temporary_child_is_never_restarted() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .run(async |sv| {
            sv.spawn_with(
                spec(&timeline, "once", |_| Act::End(ms(10), Exit::Fail))
                    .restart(Restart::Temporary),
            )
            .unwrap();
            sleep(secs(1)).await;
            sv.stats()
        })
        .await
        .unwrap();
    assert_eq!(timeline.names(), ["start once#1", "fail once#1"]);
    assert_eq!(counts(supervised.value.unwrap()), (1, 0, 0, 1, 0, 0, 0));
}

// ---------------------------------------------------------------------------
// 10. The report
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_report_has_one_entry_per_child_alive_at_shutdown_with_roles_and_times() {
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .name("report")
        .grace(secs(2))
        .cancel_timeout(secs(1))
        .child(spec(&timeline, "db", |_| Act::Linger(ms(100))))
        .run(async |sv| {
            // Ended before the shutdown: not in the report.
            sv.spawn("early", async {}).unwrap();
            sv.spawn(
                "request",
                act(timeline.clone(), "request".into(), Act::Linger(ms(400))),
            )
            .unwrap();
            sv.spawn("deaf", act(timeline.clone(), "deaf".into(), Act::Deaf))
                .unwrap();
            let log = timeline.clone();
            sv.shield("flush", async move {
                sleep(ms(1_700)).await;
                log.push("flushed");
            })
            .unwrap();
            sv.shield("stuck", pending::<()>()).unwrap();
            sleep(ms(10)).await;
            // The body runs a scope of its own while the shutdown begins.
            Scope::builder()
                .name("body-scope")
                .run(async |scope| {
                    scope.spawn(async {
                        tethered::stop_requested().await;
                        sleep(ms(200)).await;
                    });
                    sleep(ms(990)).await;
                    sv.shutdown("report time").await
                })
                .await
                .ok()
        })
        .await
        .unwrap();
    assert!(supervised.value.is_none());
    let report = supervised.report;
    // The grace (2s, held by `stuck`), `db`'s stop (100ms), then what is
    // left of the cancel timeout (1s), still held by `stuck`.
    assert_eq!(report.took(), ms(3_100));
    let summary: Vec<(&str, ChildRole, Option<Duration>)> = report
        .children()
        .iter()
        .map(|child| {
            let after = match child.end() {
                ChildEnd::Exited { after, .. } => Some(*after),
                _ => None,
            };
            (child.name().unwrap_or("?"), child.role(), after)
        })
        .collect();
    // In the order they ended, the straggler last. `stuck` holds the
    // non-static children's phase until the grace is over: `deaf` is
    // cancelled then, and `db` is only then asked to stop, which it does.
    assert_eq!(
        summary[..4],
        [
            ("request", ChildRole::Dynamic, Some(ms(400))),
            ("flush", ChildRole::Shield, Some(ms(700))),
            ("deaf", ChildRole::Dynamic, Some(secs(2))),
            ("db", ChildRole::Static, Some(ms(2_100))),
        ]
    );
    // A scope the body ran has no end record of its own: it is reported as
    // ending when the report was made, not when it did (at the grace).
    assert_eq!(
        summary[4],
        ("body-scope", ChildRole::Scope, Some(report.took()))
    );
    assert_eq!(summary[5], ("stuck", ChildRole::Shield, None));
    assert_eq!(summary.len(), 6);
    let text = report.to_string();
    assert!(text.contains("6 children, 1 still running"), "{text}");
    assert!(text.contains("shield `stuck`"), "{text}");
    assert!(text.contains("straggler: STILL RUNNING"), "{text}");
    assert!(text.contains("dynamic `request`"), "{text}");
    assert!(text.contains("stopped cleanly, after 400ms"), "{text}");
    assert!(text.contains("dynamic `deaf`"), "{text}");
    assert!(
        text.contains(
            "): cancelled: timed out: still running when the shutdown's grace of 2s ran out"
        ),
        "{text}"
    );
    assert!(text.contains("scope `body-scope`"), "{text}");
}

// ---------------------------------------------------------------------------
// Edge cases of the shutdown's callers and of the run future
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_body_awaiting_its_own_shutdown_gets_the_report_and_returns_its_value() {
    // The shutdown does not wait for a body that waits for the shutdown:
    // the static child is stopped at once, and the body gets the report.
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .grace(secs(2))
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .run(async |sv| {
            sleep(secs(1)).await;
            let report = sv.shutdown("done").await;
            (report.took(), report.reason().message().map(str::to_owned))
        })
        .await
        .unwrap();
    assert_eq!(
        supervised.value,
        Some((Duration::ZERO, Some("done".to_owned())))
    );
    assert_eq!(supervised.report.reason().message(), Some("done"));
    assert_eq!(timeline.now(), secs(1));
    assert_eq!(
        timeline.events(),
        expect(&[(0, "start db#1"), (1_000, "stop db#1")])
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_goes_on_awaiting_after_its_own_shutdown_returned() {
    // The body awaits the report, then flushes, logs and sleeps: each
    // further `.await` polls the run future again after the report is in.
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .run(async |sv| {
            let report = sv.shutdown("close").await;
            tokio::task::yield_now().await;
            sleep(ms(300)).await;
            tokio::task::yield_now().await;
            report.reason().message().map(str::to_owned)
        })
        .await
        .unwrap();
    assert_eq!(supervised.value, Some(Some("close".to_owned())));
    assert_eq!(timeline.now(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn a_supervise_body_goes_on_awaiting_after_its_own_shutdown_returned() {
    let supervised = tethered::supervise! {
        child "idle" => async { tethered::stop_requested().await; },
        body |sv| {
            let report = sv.shutdown("close").await;
            tokio::task::yield_now().await;
            report.stragglers().count()
        },
    }
    .unwrap();
    assert_eq!(supervised.value, Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_future_polled_again_after_it_returned_gives_the_report_again() {
    let supervised = Supervisor::builder()
        .run(async |sv| {
            let mut shutdown = sv.shutdown("close");
            let first = (&mut shutdown).await;
            // As `select!` in a loop would.
            let again = std::future::poll_fn(|cx| std::pin::Pin::new(&mut shutdown).poll(cx)).await;
            (
                first.took(),
                again.took(),
                again.reason().message().map(str::to_owned),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        supervised.value,
        Some((Duration::ZERO, Duration::ZERO, Some("close".to_owned())))
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_starts_a_shutdown_and_drops_the_future_is_still_waited_for() {
    // Only a caller polling the shutdown's future is exempt from the wait.
    let timeline = Timeline::new();
    let supervised = Supervisor::builder()
        .grace(secs(2))
        .child(spec(&timeline, "db", |_| Act::UntilStop))
        .run(async |sv| {
            drop(sv.shutdown("done"));
            tethered::stop_requested().await;
            sleep(ms(500)).await;
            "finished"
        })
        .await
        .unwrap();
    assert_eq!(supervised.value, Some("finished"));
    assert_eq!(timeline.now(), ms(500));
    assert_eq!(
        timeline.events(),
        expect(&[(0, "start db#1"), (500, "stop db#1")])
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_run_future_hands_the_shutdown_to_a_task_of_its_own() {
    let timeline = Timeline::new();
    let run = Supervisor::builder()
        .name("dropped-sv")
        .grace(secs(1))
        .child(spec(&timeline, "polite", |_| Act::Linger(ms(200))))
        .child(spec(&timeline, "deaf", |_| Act::Deaf))
        .run(async |sv| {
            sv.spawn("job", act(timeline.clone(), "job".into(), Act::UntilStop))
                .unwrap();
            pending::<()>().await
        });
    assert!(tokio::time::timeout(secs(2), run).await.is_err());
    // The shutdown goes on without the future: stop, grace, cancel.
    assert!(tree_entry("dropped-sv").is_some());
    sleep(secs(5)).await;
    assert!(tree_entry("dropped-sv").is_none());
    assert_eq!(
        timeline.events_cancels_sorted(),
        expect(&[
            (0, "start polite#1"),
            (0, "start deaf#1"),
            (0, "start job"),
            (2_000, "stop job"),
            // `deaf` (declared last) is asked first, and cancelled when its
            // grace is over; then `polite`, which takes its 200ms.
            (3_000, "cancel deaf#1"),
            (3_000, "stop polite#1"),
            (3_200, "done polite#1"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_clone_of_the_supervisor_spawns_from_a_plain_task() {
    let supervised = Supervisor::builder()
        .name("listener-sv")
        .run(async |sv| {
            let sv = sv.clone();
            // An accept loop in a plain tokio task, one child per connection.
            let listener = tokio::spawn(async move {
                let mut handles = Vec::new();
                for n in 0..3u64 {
                    sleep(ms(100)).await;
                    handles.push(
                        sv.spawn(format!("conn-{n}"), async move {
                            sleep(ms(50 * (n + 1))).await;
                        })
                        .unwrap(),
                    );
                }
                let mut exits = Vec::new();
                for handle in handles {
                    exits.push(handle.join().await.to_string());
                }
                (exits, sv.stats())
            });
            listener.await.unwrap()
        })
        .await
        .unwrap();
    let (exits, stats) = supervised.value.unwrap();
    assert_eq!(exits, ["completed", "completed", "completed"]);
    assert_eq!(counts(stats), (3, 0, 3, 0, 0, 0, 0));
    assert!(supervised.report.children().is_empty());
}

/// A stop from above starts the shutdown at once: the body, seeing the
/// stop, can no longer spawn children that would escape the shutdown.
#[tokio::test(start_paused = true)]
async fn a_stop_from_above_refuses_new_children_at_once() {
    let outcome = Scope::run(async |scope| {
        let supervised = scope.spawn(Supervisor::builder().name("svc").run(async |sv| {
            let _ = sv.spawn("early", sleep(ms(50))).unwrap();
            tethered::stop_requested().await;
            sv.spawn("late", sleep(ms(50))).map(drop)
        }));
        sleep(ms(10)).await;
        supervised.stop("deploy");
        supervised.join().await.unwrap()
    })
    .await
    .unwrap();
    let supervised = outcome.unwrap();
    let refused = supervised.value.expect("the body returned").unwrap_err();
    assert!(refused.to_string().contains("svc"), "{refused}");
    assert_eq!(supervised.report.children().len(), 1);
    assert!(supervised.report.child("early").is_some());
}

// ---------------------------------------------------------------------------
// Many short dynamic children on two workers
// ---------------------------------------------------------------------------

/// Detached children ending on the other worker leave their ends to be
/// swept, and their entries to be reused, by the spawning one: on two
/// workers, every child still runs as itself (its own name, not cancelled),
/// and is counted once, whichever way it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_short_children_on_two_workers_each_run_as_themselves() {
    const CHILDREN: usize = 20_000;
    let mismatched = Arc::new(AtomicU32::new(0));
    let ended = Arc::new(AtomicU32::new(0));
    let all_ended = Arc::new(tokio::sync::Notify::new());
    let stats = Supervisor::builder()
        .name("short-lived")
        .run(async |sv| {
            for i in 0..CHILDREN {
                let name = format!("job-{i}");
                let (mismatched, ended, all_ended) =
                    (mismatched.clone(), ended.clone(), all_ended.clone());
                let child = async move {
                    let current = tethered::current();
                    if current.name() != Some(format!("job-{i}").as_str()) || current.is_cancelled()
                    {
                        mismatched.fetch_add(1, Ordering::SeqCst);
                    }
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    let outcome = if i % 5 == 0 {
                        Err("odd one out")
                    } else {
                        Ok(())
                    };
                    if ended.fetch_add(1, Ordering::SeqCst) + 1 == CHILDREN as u32 {
                        all_ended.notify_one();
                    }
                    outcome
                };
                let _ = sv.spawn(name, child).expect("the supervisor runs");
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            all_ended.notified().await;
            // Counted once each: wait for the last ends to be counted.
            while sv.stats().live > 0 {
                tokio::task::yield_now().await;
            }
            sv.stats()
        })
        .await
        .unwrap()
        .value
        .expect("the body returned");
    assert_eq!(mismatched.load(Ordering::SeqCst), 0);
    assert_eq!(stats.started, CHILDREN as u64);
    assert_eq!(stats.failed, (CHILDREN as u64).div_ceil(5));
    assert_eq!(stats.completed + stats.failed, CHILDREN as u64);
    assert_eq!((stats.live, stats.panicked, stats.cancelled), (0, 0, 0));
}

// ---------------------------------------------------------------------------
// Reasons carry what happened
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn siblings_stopped_for_a_restart_are_told_what_ended_it() {
    let seen: Arc<Mutex<Option<CancelReason>>> = Arc::default();
    let record = seen.clone();
    let starts = Arc::new(AtomicU32::new(0));
    Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .child(ChildSpec::new("cache", move || {
            let record = record.clone();
            async move {
                let reason = tethered::stop_requested().await;
                record.lock().unwrap().get_or_insert(reason);
            }
        }))
        .child(ChildSpec::new("db", move || {
            let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    return Err("connection reset");
                }
                tethered::stop_requested().await;
                Ok(())
            }
        }))
        .run(async |_| sleep(secs(1)).await)
        .await
        .unwrap();
    let reason = seen.lock().unwrap().clone().expect("cache was stopped");
    assert_eq!(reason.kind(), CancelKind::SiblingFailed);
    let message = reason.message().unwrap();
    assert!(message.contains("restarting with `db`"), "{message}");
    assert!(message.contains("connection reset"), "{message}");
}

// ---------------------------------------------------------------------------
// Durations at their limits
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_largest_grace_and_cancel_timeout_still_end_in_a_report() {
    let supervised = Supervisor::builder()
        .grace(Duration::MAX)
        .cancel_timeout(Duration::MAX)
        .child(ChildSpec::new("polite", || async {
            tethered::stop_requested().await;
        }))
        .run(async |sv| {
            sv.spawn("request", async {
                tethered::stop_requested().await;
            })
            .unwrap();
            sleep(secs(1)).await;
        })
        .await
        .unwrap();
    assert_eq!(supervised.report.took(), Duration::ZERO);
    assert_eq!(supervised.report.children().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_largest_backoff_waits_for_ever_and_shuts_down_cleanly() {
    let supervised = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .grace(Duration::MAX)
        .cancel_timeout(Duration::MAX)
        .child(ChildSpec::new("steady", || async {
            tethered::stop_requested().await;
        }))
        .child(
            ChildSpec::new("flaky", || async { Err::<(), _>("down") })
                .backoff(Backoff::new(Duration::MAX, Duration::MAX).jitter(0.5)),
        )
        .run(async |sv| {
            sleep(secs(3_600)).await;
            sv.stats()
        })
        .await
        .unwrap();
    let stats = supervised.value.unwrap();
    assert_eq!((stats.failed, stats.restarted), (1, 0));
}

#[test]
fn a_supervisor_polled_outside_a_tokio_runtime_says_so() {
    // A minimal executor that is not tokio. Nothing could run the
    // children, or time the shutdown: the first poll says what is wrong
    // rather than hang or drop the children.
    let mut supervisor = std::pin::pin!(Supervisor::builder().name("bare").run(async |_| 5));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = supervisor.as_mut().poll(&mut cx);
    }))
    .unwrap_err();
    let message = panicked.downcast::<String>().unwrap();
    assert!(message.contains("supervisor `bare`"), "{message}");
    assert!(message.contains("inside a tokio runtime"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn children_awaiting_the_report_are_cancelled_not_waited_for() {
    // A dynamic child and a static one each await the report: neither is
    // waited for (they wait for us), both are cancelled in their turn,
    // and the shutdown does not sit out its cancel timeout for them.
    let timeline = Timeline::new();
    let (give, take) = tokio::sync::oneshot::channel::<Supervisor>();
    let take = Arc::new(Mutex::new(Some(take)));
    let supervised = Supervisor::builder()
        .grace(secs(1))
        .cancel_timeout(secs(10))
        .child(ChildSpec::new("admin", move || {
            let take = take.lock().unwrap().take();
            async move {
                let sv = take.unwrap().await.unwrap();
                let _report = sv.shutdown("admin says").await;
                unreachable!("cancelled before the report");
            }
        }))
        .run(async |sv| {
            give.send(sv.clone()).unwrap();
            let log = timeline.clone();
            let waiter = sv.clone();
            sv.spawn("watcher", async move {
                let _on_cancel = OnCancel {
                    timeline: log,
                    who: "watcher".into(),
                };
                tethered::stop_requested().await;
                let _report = waiter.shutdown("watcher says").await;
            })
            .unwrap();
            tethered::stop_requested().await;
        })
        .await
        .unwrap();
    let report = supervised.report;
    assert_eq!(report.reason().message(), Some("admin says"));
    assert!(report.stragglers().next().is_none());
    assert_eq!(report.took(), Duration::ZERO, "{report}");
    for name in ["admin", "watcher"] {
        let exit = report.child(name).unwrap().exit().unwrap();
        assert!(matches!(exit, ChildExit::Cancelled(_)), "{name}: {exit}");
    }
    assert_eq!(timeline.events(), expect(&[(0, "cancel watcher")]));
}

#[tokio::test(start_paused = true)]
async fn children_that_never_return_are_accepted_and_cancelled_at_shutdown() {
    // `async { loop { … } }` has the output `!`: a heartbeat ends only
    // when it is cancelled.
    let beats = Arc::new(AtomicU32::new(0));
    let counted = beats.clone();
    let supervised = Supervisor::builder()
        .grace(ms(100))
        .child(ChildSpec::new("heartbeat", move || {
            let counted = counted.clone();
            async move {
                loop {
                    counted.fetch_add(1, Ordering::SeqCst);
                    sleep(secs(1)).await;
                }
            }
        }))
        .run(async |sv| {
            sv.spawn("poller", async {
                loop {
                    sleep(secs(1)).await;
                }
            })
            .unwrap();
            sleep(ms(2_500)).await;
        })
        .await
        .unwrap();
    assert_eq!(beats.load(Ordering::SeqCst), 3);
    for name in ["heartbeat", "poller"] {
        let exit = supervised.report.child(name).unwrap().exit().unwrap();
        assert!(matches!(exit, ChildExit::Cancelled(_)), "{name}: {exit}");
    }
}

/// A supervisor whose one child is the next level's supervisor, down to a
/// child that fails: each gives up (intensity 0), so each level's error
/// holds the one below it.
fn failing_supervisors(
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SupervisorError>> + Send>> {
    Box::pin(async move {
        let spec = if depth == 0 {
            ChildSpec::new("leaf", || async { Err::<(), _>("disk on fire") })
        } else {
            ChildSpec::new(format!("level-{}", depth - 1), move || {
                failing_supervisors(depth - 1)
            })
        };
        Supervisor::builder()
            .name(format!("sv-{depth}"))
            .intensity(0, secs(1))
            .child(spec)
            .run(async |_| pending::<()>().await)
            .await
            .map(drop)
    })
}

#[tokio::test(start_paused = true)]
async fn nested_supervisor_errors_show_their_outer_levels() {
    let error = failing_supervisors(12).await.unwrap_err();
    let shown = error.to_string();
    assert!(
        shown.starts_with("supervisor `sv-12` failed: child `level-11`"),
        "{shown}"
    );
    assert!(shown.contains("sv-5"), "{shown}");
    assert!(
        shown.contains("(and more nested errors, not shown)"),
        "{shown}"
    );
    assert!(!shown.contains("disk on fire"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn a_static_child_waiting_out_its_backoff_is_in_the_report_with_its_starts_and_last_failure()
{
    let supervised = Supervisor::builder()
        .name("svc")
        .child(
            ChildSpec::new("flaky", || async {
                sleep(ms(500)).await;
                Err::<(), _>("connection refused")
            })
            .backoff(Backoff::new(secs(2), secs(2))),
        )
        .child(ChildSpec::new("steady", || async {
            tethered::stop_requested().await;
        }))
        .run(async |_sv| sleep(secs(1)).await)
        .await
        .unwrap();
    let report = supervised.report;
    // Failed at 0.5 s, due again at 2.5 s; the shutdown began at 1 s.
    let flaky = report.child("flaky").unwrap();
    assert!(
        matches!(flaky.end(), ChildEnd::NotRunning { next_start: Some(due) } if *due == ms(1_500)),
        "{flaky}"
    );
    assert_eq!(flaky.starts(), Some(1));
    assert_eq!(
        flaky.last_failure().unwrap().error().unwrap().to_string(),
        "connection refused"
    );
    let text = flaky.to_string();
    assert!(
        text.ends_with(
            "in backoff, its next start due in 1.5s; not restarted: shutting down; \
             started once, last failure: failed: connection refused"
        ),
        "{text}"
    );
    let steady = report.child("steady").unwrap();
    assert!(
        steady
            .to_string()
            .contains("stopped cleanly, after 0ns; started once"),
        "{steady}"
    );
    assert_eq!(report.children().len(), 2);
}

/// A job whose audit write never ends: a shield, which nothing cancels.
#[tethered::scoped]
async fn job_with_a_stuck_audit() {
    shield!("audit", async {
        std::future::pending::<()>().await; // the stuck write
    });
}

#[tokio::test(start_paused = true)]
async fn a_straggler_says_which_await_it_is_stuck_at() {
    let supervised = Supervisor::builder()
        .name("jobs")
        .grace(secs(1))
        .cancel_timeout(secs(1))
        .run(async |sv| {
            sv.spawn("job-700", job_with_a_stuck_audit()).unwrap();
            sleep(secs(1)).await;
        })
        .await
        .unwrap();
    let report = supervised.report;
    let job = report.child("job-700").unwrap();
    let ChildEnd::Straggler { waiting_at, .. } = job.end() else {
        panic!("{job}")
    };
    let site = waiting_at.expect("where it is stuck");
    let source = include_str!("supervisor.rs");
    let line = 1 + source
        .lines()
        .position(|line| line.contains("// the stuck write"))
        .unwrap();
    assert_eq!(site.line() as usize, line);
    let text = job.to_string();
    assert!(
        text.contains(&format!("), waiting at {}:{line}:", site.file()))
            && text.contains("(std::future::pending::<()>().await), for 3s"),
        "{text}"
    );
}
