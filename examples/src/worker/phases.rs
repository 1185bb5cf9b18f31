//! The shutdown, told as it happens: each phase is one line on the
//! [`Console`], with the cancel reason that started it.
//!
//! ```text
//! shutdown 1/4: stop taking jobs: signal: received SIGTERM (at examples/src/bin/worker.rs:15:1)
//! shutdown 2/4: 14 jobs in flight get up to 1s to finish
//! shutdown 3/4: grace over; cancelling the 2 jobs still running (each returns its job to the queue), reason: timed out: still running when the shutdown's grace of 1s ran out (…); caused by: signal: received SIGTERM (…)
//! shutdown 4/4: supervisor `worker` stopped in 1.003s: 12 jobs finished after the stop, 2 cancelled and returned, …
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tethered::{CancelReason, ChildExit, ChildRole, ShutdownReport};

use super::console::Console;

/// Tells the operator where the shutdown is.
#[derive(Debug)]
pub struct Phases {
    console: Arc<Console>,
    grace: Duration,
    tree: bool,
    stopping: AtomicBool,
    cancelling: AtomicBool,
}

impl Phases {
    /// Phases of a worker whose jobs get `grace` to finish; with `tree`, the
    /// task tree is printed when the shutdown begins.
    pub fn new(console: Arc<Console>, grace: Duration, tree: bool) -> Phases {
        Phases {
            console,
            grace,
            tree,
            stopping: AtomicBool::new(false),
            cancelling: AtomicBool::new(false),
        }
    }

    /// Phases 1 and 2: the body stopped taking jobs because of `reason`;
    /// `in_flight` jobs may still finish.
    pub fn stopping(&self, reason: &CancelReason, in_flight: usize) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.console
            .say(format_args!("shutdown 1/4: stop taking jobs: {reason}"));
        let (jobs, get) = if in_flight == 1 {
            ("job", "gets")
        } else {
            ("jobs", "get")
        };
        self.console.say(format_args!(
            "shutdown 2/4: {in_flight} {jobs} in flight {get} up to {} to finish",
            humantime::format_duration(self.grace)
        ));
        if self.tree {
            self.console.say(format_args!(
                "the task tree as the shutdown begins:\n{}",
                tethered::tree()
            ));
        }
    }

    /// Phase 3, told by the first job to be cancelled: the grace is over.
    /// `in_flight` counts it.
    pub fn cancelled(&self, reason: &CancelReason, in_flight: usize) {
        if self.cancelling.swap(true, Ordering::SeqCst) {
            return;
        }
        let jobs = if in_flight == 1 { "job" } else { "jobs" };
        self.console.say(format_args!(
            "shutdown 3/4: grace over; cancelling the {in_flight} {jobs} still running \
             (each returns its job to the queue), reason: {reason}"
        ));
    }

    /// Phase 4: the supervisor has stopped, and `report` says how each of
    /// its children ended.
    pub fn stopped(&self, report: &ShutdownReport) {
        if !self.stopping.load(Ordering::SeqCst) {
            // Not stopped: the queue ran out (`--exit-when-empty`).
            return;
        }
        if !self.cancelling.load(Ordering::SeqCst) {
            self.console.say(
                "shutdown 3/4: every job in flight finished within the grace; nothing to cancel",
            );
        }
        let jobs = report
            .children()
            .iter()
            .filter(|child| child.role() == ChildRole::Dynamic)
            .filter(|child| child.name().is_some_and(|name| name.starts_with("job-")));
        let (mut finished, mut cancelled, mut other) = (0, 0, 0);
        for job in jobs {
            match job.exit() {
                Some(ChildExit::Completed) => finished += 1,
                Some(ChildExit::Cancelled(_)) => cancelled += 1,
                _ => other += 1,
            }
        }
        self.console.say(format_args!(
            "shutdown 4/4: supervisor `{}` stopped in {:?}: {finished} jobs finished after the stop, \
             {cancelled} cancelled and returned, {other} failed or still running; \
             the metrics stopped last",
            report.supervisor().unwrap_or("worker"),
            Duration::from_millis(u64::try_from(report.took().as_millis()).unwrap_or(u64::MAX)),
        ));
    }
}
