//! The `metrics` feature: what supervisors, periodic schedules and scopes
//! record through the facade, read back from a debugging recorder.
//!
//! One recorder serves the whole test binary (the facade's recorder is
//! global); each test uses names of its own, and reads only its series.

#![cfg(feature = "metrics")]

mod common;

use std::future::pending;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{EXPECTED, quiet_expected_panics};
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tethered::metrics::*;
use tethered::{ChildSpec, Overlap, Periodic, Restart, Scope, ScopeErrorKind, Supervisor};
use tokio::time::sleep;

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

/// Every series so far: name, labels, value, unit and description.
///
/// The debugging recorder's snapshots read destructively (counters and
/// gauges are swapped to zero, histograms drained), and tests run side by
/// side: each snapshot is added to this running total, which every test
/// reads through.
type Series = (
    String,
    Vec<(String, String)>,
    Value,
    Option<Unit>,
    Option<String>,
);

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

impl From<DebugValue> for Value {
    fn from(value: DebugValue) -> Self {
        match value {
            DebugValue::Counter(count) => Value::Counter(count),
            DebugValue::Gauge(value) => Value::Gauge(value.into_inner()),
            DebugValue::Histogram(values) => {
                Value::Histogram(values.into_iter().map(|value| value.into_inner()).collect())
            }
        }
    }
}

fn totals() -> &'static Mutex<Vec<Series>> {
    static TOTALS: Mutex<Vec<Series>> = Mutex::new(Vec::new());
    &TOTALS
}

/// The totals at one moment.
struct Read(Vec<Series>);

impl Read {
    fn now() -> Self {
        let mut totals = totals().lock().unwrap();
        for (key, unit, description, value) in snapshotter().snapshot().into_vec() {
            let key = key.key();
            let name = key.name().to_owned();
            let labels: Vec<_> = key
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            let description = description.map(|text| text.to_string());
            let value = Value::from(value);
            match totals
                .iter_mut()
                .find(|(n, l, ..)| *n == name && *l == labels)
            {
                Some((_, _, total, known_unit, known_description)) => {
                    *known_unit = known_unit.or(unit);
                    if description.is_some() {
                        *known_description = description;
                    }
                    match (total, value) {
                        (Value::Counter(total), Value::Counter(more)) => *total += more,
                        (Value::Gauge(total), Value::Gauge(more)) => *total += more,
                        (Value::Histogram(total), Value::Histogram(more)) => total.extend(more),
                        (total, more) => panic!("{name}: {total:?} then {more:?}"),
                    }
                }
                None => totals.push((name, labels, value, unit, description)),
            }
        }
        Read(totals.clone())
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|(series, have, ..)| {
                series == name
                    && labels
                        .iter()
                        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, _, value, ..)| value)
            .collect()
    }

    /// The sum of the counters of `name` with `labels` (0 when none).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.find(name, labels)
            .into_iter()
            .map(|value| match value {
                Value::Counter(count) => *count,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels)[..] {
            [Value::Gauge(value)] => *value,
            ref other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.find(name, labels)[..] {
            [Value::Histogram(values)] => values.clone(),
            ref other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    fn labels_of(&self, name: &str) -> Vec<&[(String, String)]> {
        self.0
            .iter()
            .filter(|(series, ..)| series == name)
            .map(|(_, labels, ..)| &labels[..])
            .collect()
    }

    /// The unit and description the series of `name` carry.
    fn description(&self, name: &str) -> (Option<Unit>, Option<&str>) {
        let (.., unit, help) = self.0.iter().find(|(series, ..)| series == name).unwrap();
        (*unit, help.as_deref())
    }
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_counts_its_children_by_role_and_end() {
    snapshotter();
    quiet_expected_panics();
    let supervised = Supervisor::builder()
        .name("metrics-jobs")
        .grace(Duration::from_secs(1))
        .cancel_timeout(Duration::from_secs(1))
        .child(
            ChildSpec::new("flaky", || async {
                sleep(Duration::from_millis(100)).await;
                Err::<(), _>("lost the connection")
            })
            .restart(Restart::Transient),
        )
        .run(async |sv| {
            sv.spawn("done", async {}).unwrap();
            sv.spawn("refused", async { Err::<(), _>("no") }).unwrap();
            sv.spawn("crashed", async { panic!("{EXPECTED}: crash") })
                .unwrap();
            sv.spawn("waiting", pending::<()>()).unwrap();
            // Outlives the shutdown: the stop and the cancel do not reach it.
            sv.shield("flush", sleep(Duration::from_secs(10))).unwrap();
            sleep(Duration::from_millis(250)).await;
            let read = Read::now();
            let live = [("supervisor", "metrics-jobs")];
            assert_eq!(
                read.gauge(SUPERVISOR_CHILDREN, &[live[0], ("role", "dynamic")]),
                1.0
            );
            assert_eq!(
                read.gauge(SUPERVISOR_CHILDREN, &[live[0], ("role", "shield")]),
                1.0
            );
            assert_eq!(
                read.gauge(SUPERVISOR_CHILDREN, &[live[0], ("role", "static")]),
                1.0
            );
        })
        .await
        .unwrap();
    assert_eq!(supervised.report.stragglers().count(), 1);

    let read = Read::now();
    let sv = ("supervisor", "metrics-jobs");
    // The static child: failed at 100 ms, restarted after its 100 ms
    // backoff, failed again at 300 ms, in the shutdown's grace, and was not
    // restarted.
    let flaky = [sv, ("role", "static"), ("child", "flaky")];
    let restarts = [sv, ("child", "flaky")];
    assert_eq!(read.counter(SUPERVISOR_CHILD_STARTS, &flaky), 2);
    assert_eq!(read.counter(SUPERVISOR_CHILD_RESTARTS, &restarts), 1);
    let ends = |end| read.counter(SUPERVISOR_CHILD_ENDS, &[sv, flaky[2], ("end", end)]);
    assert_eq!((ends("failed"), ends("cancelled")), (2, 0));
    // Dynamic children: one series for all of them, no child label.
    let dynamic = [sv, ("role", "dynamic")];
    assert_eq!(read.counter(SUPERVISOR_CHILD_STARTS, &dynamic), 4);
    for (end, count) in [
        ("completed", 1),
        ("failed", 1),
        ("panicked", 1),
        ("cancelled", 1),
    ] {
        let labels = [sv, ("role", "dynamic"), ("end", end)];
        assert_eq!(read.counter(SUPERVISOR_CHILD_ENDS, &labels), count, "{end}");
    }
    for labels in read.labels_of(SUPERVISOR_CHILD_STARTS) {
        let role = labels.iter().find(|(key, _)| key == "role").unwrap();
        let has_child = labels.iter().any(|(key, _)| key == "child");
        assert_eq!(has_child, role.1 == "static", "{labels:?}");
    }
    // The shield, a straggler, is still running: the shutdown gave up on it
    // after its grace and cancel timeout.
    assert_eq!(
        read.gauge(SUPERVISOR_CHILDREN, &[sv, ("role", "shield")]),
        1.0
    );
    assert_eq!(
        read.gauge(SUPERVISOR_CHILDREN, &[sv, ("role", "dynamic")]),
        0.0
    );
    assert_eq!(
        read.gauge(SUPERVISOR_CHILDREN, &[sv, ("role", "static")]),
        0.0
    );
    assert_eq!(read.counter(SUPERVISOR_STRAGGLERS, &[sv]), 1);
    assert_eq!(read.histogram(SUPERVISOR_SHUTDOWN_SECONDS, &[sv]), [2.0]);
    // Described to the recorder when the first supervisor started.
    let (unit, help) = read.description(SUPERVISOR_SHUTDOWN_SECONDS);
    assert_eq!(unit, Some(Unit::Seconds));
    assert_eq!(help, Some("How long a supervisor's shutdown took."));
    assert!(read.description(SUPERVISOR_CHILD_ENDS).1.is_some());

    // Once it ends, the gauge is back to zero.
    sleep(Duration::from_secs(10)).await;
    let read = Read::now();
    assert_eq!(
        read.gauge(SUPERVISOR_CHILDREN, &[sv, ("role", "shield")]),
        0.0
    );
    assert_eq!(
        read.counter(SUPERVISOR_CHILD_ENDS, &[sv, ("role", "shield")]),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_periodic_schedule_counts_ticks_overruns_and_runs() {
    snapshotter();
    let schedule = Periodic::every(Duration::from_secs(1))
        .overlap(Overlap::Skip)
        .name("metrics-poll");
    let stats = schedule.stats();
    Scope::run(async |scope| {
        // Each run takes 2.5 s: tick 0 runs, ticks 1 and 2 find it going
        // (skipped), tick 3 runs, tick 4 and 5 are skipped, the stop comes
        // at 5.5 s and the run of tick 3 completes at 5.5 s.
        let running = scope.spawn(schedule.run(|| sleep(Duration::from_millis(2_500))));
        sleep(Duration::from_millis(5_500)).await;
        running.stop("enough");
    })
    .await
    .unwrap();
    let stats = stats.get();
    assert_eq!(
        (stats.ticks, stats.started, stats.skipped, stats.overran),
        (6, 2, 4, 4)
    );

    let read = Read::now();
    let poll = [("schedule", "metrics-poll")];
    assert_eq!(read.counter(PERIODIC_TICKS, &poll), stats.ticks);
    assert_eq!(read.counter(PERIODIC_TICKS_SKIPPED, &poll), stats.skipped);
    assert_eq!(read.counter(PERIODIC_TICKS_OVERRAN, &poll), stats.overran);
    assert_eq!(read.counter(PERIODIC_TICKS_MISSED, &poll), 0);
    assert_eq!(read.counter(PERIODIC_RUN_STARTS, &poll), 2);
    let completed = [poll[0], ("end", "completed")];
    assert_eq!(read.counter(PERIODIC_RUN_ENDS, &completed), 2);
    assert_eq!(read.histogram(PERIODIC_RUN_SECONDS, &poll), [2.5, 2.5]);
    assert_eq!(
        read.histogram(PERIODIC_RUN_LATENESS_SECONDS, &poll),
        [0.0, 0.0]
    );
}

#[tokio::test(start_paused = true)]
async fn periodic_runs_cut_short_are_counted_by_why() {
    snapshotter();
    let schedule = Periodic::every(Duration::from_secs(1))
        .overlap(Overlap::Cancel)
        .timeout(Duration::from_millis(1_500))
        .name("metrics-sync");
    Scope::run(async |scope| {
        // Tick 0's run is cancelled by tick 1, tick 1's by tick 2; tick 2's
        // is cancelled with the schedule at 2.5 s.
        let running = scope.spawn(schedule.run(pending::<()>));
        sleep(Duration::from_millis(2_500)).await;
        running.cancel("test over");
    })
    .await
    .unwrap();
    let read = Read::now();
    let sync = ("schedule", "metrics-sync");
    let ends = |end| read.counter(PERIODIC_RUN_ENDS, &[sync, ("end", end)]);
    assert_eq!(ends("cancelled_by_overlap"), 2);
    assert_eq!(ends("cancelled"), 1);
    assert_eq!(ends("timed_out"), 0);
    assert_eq!(
        read.histogram(PERIODIC_RUN_SECONDS, &[sync]),
        [1.0, 1.0, 0.5]
    );
}

#[tokio::test(start_paused = true)]
async fn a_periodic_run_over_its_timeout_is_counted_as_timed_out() {
    snapshotter();
    let schedule = Periodic::every(Duration::from_secs(1))
        .timeout(Duration::from_millis(300))
        .name("metrics-timeout");
    Scope::run(async |scope| {
        let running = scope.spawn(schedule.run(pending::<()>));
        sleep(Duration::from_millis(1_500)).await;
        running.stop("test over");
    })
    .await
    .unwrap();
    let read = Read::now();
    let labels = [("schedule", "metrics-timeout"), ("end", "timed_out")];
    assert_eq!(read.counter(PERIODIC_RUN_ENDS, &labels), 2);
}

#[tokio::test(start_paused = true)]
async fn scope_errors_are_counted_by_kind_under_a_bounded_label() {
    snapshotter();
    quiet_expected_panics();
    let failed = Scope::builder()
        .name("metrics-fetch")
        .run(async |scope| {
            scope.spawn_fallible(async { Err::<(), _>("refused") });
        })
        .await
        .unwrap_err();
    assert_eq!(failed.kind(), ScopeErrorKind::Failed);
    let timed_out = Scope::builder()
        .name("metrics-slow")
        .timeout(Duration::from_secs(1))
        .run(async |_| pending::<()>().await)
        .await
        .unwrap_err();
    assert_eq!(timed_out.kind(), ScopeErrorKind::TimedOut);
    // A name made at run time is not a label: one series per request path
    // would grow without bound. The scope's location stands for it.
    let line = line!() + 3;
    let cancelled = Scope::builder()
        .name(format!("GET /users/{}", 42))
        .run(async |scope| {
            scope.cancel("the client left");
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert_eq!(cancelled.kind(), ScopeErrorKind::Cancelled);

    let read = Read::now();
    let kind = |scope: &str, kind| read.counter(SCOPE_ERRORS, &[("scope", scope), ("kind", kind)]);
    assert_eq!(kind("metrics-fetch", "failed"), 1);
    assert_eq!(kind("metrics-slow", "timed_out"), 1);
    assert_eq!(kind(&format!("{}:{line}", file!()), "cancelled"), 1);
    assert!(
        read.labels_of(SCOPE_ERRORS)
            .iter()
            .all(|labels| labels.iter().all(|(_, value)| !value.starts_with("GET")))
    );
}
