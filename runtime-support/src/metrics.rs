//! Metrics through the [`metrics`](https://docs.rs/metrics) facade, with the
//! `metrics` feature: what supervisors, periodic schedules and scopes do,
//! counted for whatever recorder the program installs (Prometheus,
//! StatsD, OpenTelemetry…).
//!
//! Each metric's name is a constant here, documented with its labels. A
//! label that names a supervisor, a schedule or a scope holds its name when
//! that name is a `&'static str` (a literal, a `#[periodic]` or `#[scoped]`
//! fn's name), and otherwise where it was created (`src/jobs.rs:42`): names
//! built at run time (`format!("GET {path}")`, a peer's address) would make
//! one series per value, without bound, which a metrics backend pays for
//! in memory. A static child is labelled with its name, a dynamic child
//! or shield only with its role, for the same reason.
//!
//! Handles are registered when a supervisor or a schedule starts: install
//! the recorder before that (first thing in `main`), as with any user of
//! the facade. Without the feature none of this is compiled.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use tethered::metrics::SUPERVISOR_CHILD_STARTS;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! recorder.install().unwrap();
//!
//! tethered::Supervisor::builder()
//!     .name("jobs")
//!     .run(async |supervisor| {
//!         supervisor.spawn("job", async {}).unwrap();
//!     })
//!     .await
//!     .unwrap();
//!
//! let (.., starts) = snapshotter
//!     .snapshot()
//!     .into_vec()
//!     .into_iter()
//!     .find(|(key, ..)| key.key().name() == SUPERVISOR_CHILD_STARTS)
//!     .unwrap();
//! assert_eq!(starts, DebugValue::Counter(1));
//! # }
//! ```

#![cfg_attr(not(feature = "metrics"), allow(dead_code, unreachable_pub))]

use std::borrow::Cow;
use std::panic::Location;

#[cfg(feature = "metrics")]
#[path = "metrics/recorded.rs"]
mod imp;
#[cfg(not(feature = "metrics"))]
#[path = "metrics/silent.rs"]
mod imp;

pub(crate) use imp::{ChildMetrics, PeriodicMetrics, RunTimer, SupervisorMetrics, scope_ended};

/// Gauge: a supervisor's children running now.
///
/// Labels: `supervisor`; `role`, one of `static`, `dynamic`, `shield`.
pub const SUPERVISOR_CHILDREN: &str = "tethered_supervisor_children";

/// Counter: children started by a supervisor, restarts included.
///
/// Labels: `supervisor`; `role`; `child`, a static child's name (absent for
/// dynamic children and shields).
pub const SUPERVISOR_CHILD_STARTS: &str = "tethered_supervisor_child_starts_total";

/// Counter: restarts of a supervisor's static children.
///
/// Labels: `supervisor`; `child`.
pub const SUPERVISOR_CHILD_RESTARTS: &str = "tethered_supervisor_child_restarts_total";

/// Counter: ends of a supervisor's children.
///
/// Labels: `supervisor`; `role`; `child` (static children only); `end`,
/// one of `completed`, `failed` (returned `Err`), `panicked`, `cancelled`.
pub const SUPERVISOR_CHILD_ENDS: &str = "tethered_supervisor_child_ends_total";

/// Histogram: how long a supervisor's shutdown took, in seconds.
///
/// Labels: `supervisor`.
pub const SUPERVISOR_SHUTDOWN_SECONDS: &str = "tethered_supervisor_shutdown_seconds";

/// Counter: children still running when a supervisor's shutdown gave up on
/// them (its report's stragglers).
///
/// Labels: `supervisor`.
pub const SUPERVISOR_STRAGGLERS: &str = "tethered_supervisor_stragglers_total";

/// Counter: ticks of a periodic schedule that fired.
///
/// Labels: `schedule`.
pub const PERIODIC_TICKS: &str = "tethered_periodic_ticks_total";

/// Counter: ticks dropped because they were missed
/// ([`Missed::Skip`](crate::Missed::Skip)).
///
/// Labels: `schedule`.
pub const PERIODIC_TICKS_MISSED: &str = "tethered_periodic_ticks_missed_total";

/// Counter: ticks that started no run because of the overlap policy.
///
/// Labels: `schedule`.
pub const PERIODIC_TICKS_SKIPPED: &str = "tethered_periodic_ticks_skipped_total";

/// Counter: ticks that found a run still going: the runs overran their
/// period, whatever the overlap policy then did about it.
///
/// Labels: `schedule`.
pub const PERIODIC_TICKS_OVERRAN: &str = "tethered_periodic_ticks_overran_total";

/// Counter: runs a periodic schedule started.
///
/// Labels: `schedule`.
pub const PERIODIC_RUN_STARTS: &str = "tethered_periodic_run_starts_total";

/// Counter: ends of a periodic schedule's runs.
///
/// Labels: `schedule`; `end`, one of `completed`, `failed` (`Err` or panic),
/// `timed_out`, `cancelled_by_overlap`, `cancelled`.
pub const PERIODIC_RUN_ENDS: &str = "tethered_periodic_run_ends_total";

/// Histogram: how long each run took, in seconds, however it ended.
///
/// Labels: `schedule`.
pub const PERIODIC_RUN_SECONDS: &str = "tethered_periodic_run_seconds";

/// Histogram: how late each run started after its tick was due, in
/// seconds (a queued run, or one that waited for a cancelled one, starts
/// late by design).
///
/// Labels: `schedule`.
pub const PERIODIC_RUN_LATENESS_SECONDS: &str = "tethered_periodic_run_lateness_seconds";

/// Counter: scopes that ended with a [`ScopeError`](crate::ScopeError).
///
/// Labels: `scope`; `kind`, one of `failed`, `timed_out`, `cancelled`
/// (as [`ScopeError::kind`](crate::ScopeError::kind)).
pub const SCOPE_ERRORS: &str = "tethered_scope_errors_total";

/// Describes every metric above to the installed recorder (exporters show
/// the descriptions as help text). Done by tethered when the first
/// supervisor or schedule starts; call it yourself to have the
/// descriptions before that.
///
/// ```
/// tethered::metrics::describe();
/// ```
pub fn describe() {
    imp::describe();
}

/// The label value for a supervisor, a schedule or a scope: its name when
/// that name is static, where it was created otherwise (see the module
/// docs).
fn label_for(
    name: Option<&Cow<'static, str>>,
    location: &'static Location<'static>,
) -> Cow<'static, str> {
    match name {
        Some(Cow::Borrowed(name)) => Cow::Borrowed(name),
        _ => Cow::Owned(format!("{}:{}", location.file(), location.line())),
    }
}

/// How a periodic run ended, for [`PERIODIC_RUN_ENDS`]'s `end` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Completed,
    Failed,
    TimedOut,
    CancelledByOverlap,
    Cancelled,
}

impl RunEnd {
    /// Every end, in declaration order (`end as usize` indexes it).
    const ALL: [RunEnd; 5] = [
        RunEnd::Completed,
        RunEnd::Failed,
        RunEnd::TimedOut,
        RunEnd::CancelledByOverlap,
        RunEnd::Cancelled,
    ];

    fn label(self) -> &'static str {
        match self {
            RunEnd::Completed => "completed",
            RunEnd::Failed => "failed",
            RunEnd::TimedOut => "timed_out",
            RunEnd::CancelledByOverlap => "cancelled_by_overlap",
            RunEnd::Cancelled => "cancelled",
        }
    }
}
