//! The metrics, recorded through the `metrics` facade.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::{Arc, Once};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, Unit, counter, gauge, histogram};
use tokio::time::Instant;

use super::{RunEnd, label_for};
use crate::{ChildExit, ScopeErrorKind};

/// A supervisor's handles: for its dynamic children and its shields (one
/// set each, shared by all of them), and for its shutdown.
pub(crate) struct SupervisorMetrics {
    supervisor: Cow<'static, str>,
    dynamic: ChildMetrics,
    shield: ChildMetrics,
    shutdown_seconds: Histogram,
    stragglers: Counter,
}

impl SupervisorMetrics {
    pub(crate) fn new(
        name: Option<&Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> Self {
        describe_once();
        let supervisor = label_for(name, location);
        SupervisorMetrics {
            dynamic: ChildMetrics::new(supervisor.clone(), "dynamic", None),
            shield: ChildMetrics::new(supervisor.clone(), "shield", None),
            shutdown_seconds: histogram!(
                super::SUPERVISOR_SHUTDOWN_SECONDS,
                "supervisor" => supervisor.clone(),
            ),
            stragglers: counter!(super::SUPERVISOR_STRAGGLERS, "supervisor" => supervisor.clone()),
            supervisor,
        }
    }

    pub(crate) fn dynamic(&self) -> ChildMetrics {
        self.dynamic.clone()
    }

    pub(crate) fn shield(&self) -> ChildMetrics {
        self.shield.clone()
    }

    /// The handles of the static child `child`, for all its starts.
    pub(crate) fn static_child(&self, child: Cow<'static, str>) -> ChildMetrics {
        ChildMetrics::new(self.supervisor.clone(), "static", Some(child))
    }

    pub(crate) fn shut_down(&self, took: Duration, stragglers: usize) {
        self.shutdown_seconds.record(took);
        self.stragglers.increment(stragglers as u64);
    }
}

/// The handles of one kind of supervised child, shared (an `Arc`) by every
/// child of that kind, so that starting one registers nothing.
#[derive(Clone)]
pub(crate) struct ChildMetrics(Arc<ChildHandles>);

struct ChildHandles {
    live: Gauge,
    starts: Counter,
    restarts: Counter,
    completed: Counter,
    failed: Counter,
    panicked: Counter,
    cancelled: Counter,
}

impl ChildMetrics {
    fn new(
        supervisor: Cow<'static, str>,
        role: &'static str,
        child: Option<Cow<'static, str>>,
    ) -> Self {
        // `supervisor`, `role`, and `child` for a static child; then `end`.
        let mut labels = vec![
            Label::new("supervisor", supervisor.clone()),
            Label::new("role", role),
        ];
        labels.extend(child.clone().map(|child| Label::new("child", child)));
        let end = |end: &'static str| {
            let mut labels = labels.clone();
            labels.push(Label::new("end", end));
            counter!(super::SUPERVISOR_CHILD_ENDS, labels)
        };
        let restarts = match child {
            Some(child) => counter!(
                super::SUPERVISOR_CHILD_RESTARTS,
                "supervisor" => supervisor.clone(),
                "child" => child,
            ),
            None => Counter::noop(),
        };
        ChildMetrics(Arc::new(ChildHandles {
            live: gauge!(super::SUPERVISOR_CHILDREN, "supervisor" => supervisor, "role" => role),
            restarts,
            completed: end("completed"),
            failed: end("failed"),
            panicked: end("panicked"),
            cancelled: end("cancelled"),
            starts: counter!(super::SUPERVISOR_CHILD_STARTS, labels),
        }))
    }

    pub(crate) fn started(&self) {
        self.0.starts.increment(1);
        self.0.live.increment(1.0);
    }

    pub(crate) fn restarted(&self) {
        self.0.restarts.increment(1);
    }

    pub(crate) fn ended(&self, exit: &ChildExit) {
        self.0.live.decrement(1.0);
        let end = match exit {
            ChildExit::Completed => &self.0.completed,
            ChildExit::Failed(failure) if failure.panic().is_some() => &self.0.panicked,
            ChildExit::Failed(_) => &self.0.failed,
            ChildExit::Cancelled(_) => &self.0.cancelled,
        };
        end.increment(1);
    }
}

/// A periodic schedule's handles, registered when it starts.
pub(crate) struct PeriodicMetrics {
    ticks: Counter,
    missed: Counter,
    skipped: Counter,
    overran: Counter,
    starts: Counter,
    ends: [Counter; RunEnd::ALL.len()],
    run_seconds: Histogram,
    lateness: Histogram,
}

impl PeriodicMetrics {
    pub(crate) fn new(
        name: Option<&Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> Self {
        describe_once();
        let schedule = label_for(name, location);
        let count = |metric: &'static str| counter!(metric, "schedule" => schedule.clone());
        PeriodicMetrics {
            ticks: count(super::PERIODIC_TICKS),
            missed: count(super::PERIODIC_TICKS_MISSED),
            skipped: count(super::PERIODIC_TICKS_SKIPPED),
            overran: count(super::PERIODIC_TICKS_OVERRAN),
            starts: count(super::PERIODIC_RUN_STARTS),
            ends: RunEnd::ALL.map(|end| {
                counter!(
                    super::PERIODIC_RUN_ENDS,
                    "schedule" => schedule.clone(),
                    "end" => end.label(),
                )
            }),
            run_seconds: histogram!(super::PERIODIC_RUN_SECONDS, "schedule" => schedule.clone()),
            lateness: histogram!(
                super::PERIODIC_RUN_LATENESS_SECONDS,
                "schedule" => schedule.clone(),
            ),
        }
    }

    /// A tick fired, after `missed` dropped ones; `overran` when a run was
    /// still going.
    pub(crate) fn ticked(&self, missed: u64, overran: bool) {
        self.ticks.increment(1);
        self.missed.increment(missed);
        if overran {
            self.overran.increment(1);
        }
    }

    pub(crate) fn skipped(&self) {
        self.skipped.increment(1);
    }

    /// A run starts at `now`, for a tick due at `due`.
    pub(crate) fn run_started(&self, due: Instant, now: Instant) -> RunTimer {
        self.starts.increment(1);
        self.lateness.record(now.saturating_duration_since(due));
        RunTimer(now)
    }

    pub(crate) fn run_ended(&self, timer: &RunTimer, end: RunEnd) {
        self.ends[end as usize].increment(1);
        self.run_seconds.record(timer.0.elapsed());
    }
}

/// When a run started, for its duration.
pub(crate) struct RunTimer(Instant);

/// Counts a scope that ended with an error of `kind`.
pub(crate) fn scope_ended(
    name: Option<&Cow<'static, str>>,
    location: &'static Location<'static>,
    kind: ScopeErrorKind,
) {
    let kind = match kind {
        ScopeErrorKind::Failed => "failed",
        ScopeErrorKind::TimedOut => "timed_out",
        ScopeErrorKind::Cancelled => "cancelled",
    };
    counter!(super::SCOPE_ERRORS, "scope" => label_for(name, location), "kind" => kind)
        .increment(1);
}

fn describe_once() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
}

pub(super) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        super::SUPERVISOR_CHILDREN,
        "Children of a supervisor running now."
    );
    describe_counter!(
        super::SUPERVISOR_CHILD_STARTS,
        "Children started by a supervisor, restarts included."
    );
    describe_counter!(
        super::SUPERVISOR_CHILD_RESTARTS,
        "Restarts of a supervisor's static children."
    );
    describe_counter!(
        super::SUPERVISOR_CHILD_ENDS,
        "Ends of a supervisor's children, by how they ended."
    );
    describe_histogram!(
        super::SUPERVISOR_SHUTDOWN_SECONDS,
        Unit::Seconds,
        "How long a supervisor's shutdown took."
    );
    describe_counter!(
        super::SUPERVISOR_STRAGGLERS,
        "Children still running when a supervisor's shutdown gave up on them."
    );
    describe_counter!(
        super::PERIODIC_TICKS,
        "Ticks of a periodic schedule that fired."
    );
    describe_counter!(
        super::PERIODIC_TICKS_MISSED,
        "Ticks of a periodic schedule dropped because they were missed."
    );
    describe_counter!(
        super::PERIODIC_TICKS_SKIPPED,
        "Ticks that started no run because of the overlap policy."
    );
    describe_counter!(
        super::PERIODIC_TICKS_OVERRAN,
        "Ticks that found a run of the schedule still going."
    );
    describe_counter!(
        super::PERIODIC_RUN_STARTS,
        "Runs a periodic schedule started."
    );
    describe_counter!(
        super::PERIODIC_RUN_ENDS,
        "Ends of a periodic schedule's runs, by how they ended."
    );
    describe_histogram!(
        super::PERIODIC_RUN_SECONDS,
        Unit::Seconds,
        "How long each periodic run took."
    );
    describe_histogram!(
        super::PERIODIC_RUN_LATENESS_SECONDS,
        Unit::Seconds,
        "How late each periodic run started after its tick was due."
    );
    describe_counter!(
        super::SCOPE_ERRORS,
        "Scopes that ended with an error, by kind."
    );
}
