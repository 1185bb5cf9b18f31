//! The four overlap policies of [`Periodic`], side by side, on the same slow
//! job.
//!
//! ```text
//! scope `periodic_overlap`        the body: waits, then stops everything
//! ├── task `skip`                 Periodic, Overlap::Skip
//! │   └── scope `skip`            its runs: tasks named `skip`
//! ├── task `cancel`               Periodic, Overlap::Cancel
//! ├── task `queue`                Periodic, Overlap::Queue
//! └── task `concurrent(2)`        Periodic, Overlap::Concurrent(2)
//! ```
//!
//! Each schedule ticks every [`PERIOD`] (200 ms) and each run takes
//! [`RUN_TAKES`] (490 ms, more than two periods), so every policy is put to
//! work from the second tick on. After [`RUN_FOR`] (3.1 s) the body stops
//! the scope: each schedule starts no new run, lets the runs in progress
//! finish, and returns its final counts. [`run`] collects them in a
//! [`Report`], which prints as a table.
//!
//! 490 ms, not 500: back-to-back runs of 500 ms (`Overlap::Queue`) would
//! end exactly when a tick fires, at 1 s, 2 s, 3 s, and which of the two
//! the schedule sees first would be up to the runtime. With 490 ms that
//! never happens before 9.8 s, so the test can count exactly.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use tethered::{Outcome, Overlap, Periodic, PeriodicStats, Scope, ScopeError};
use tokio::time::{Instant, sleep};

/// How often each schedule ticks.
pub const PERIOD: Duration = Duration::from_millis(200);

/// How long each run takes.
pub const RUN_TAKES: Duration = Duration::from_millis(490);

/// How long the schedules run before they are stopped.
pub const RUN_FOR: Duration = Duration::from_millis(3_100);

/// The four policies, with the names the table shows.
pub const POLICIES: [(&str, Overlap); 4] = [
    ("skip", Overlap::Skip),
    ("cancel", Overlap::Cancel),
    ("queue", Overlap::Queue),
    (
        "concurrent(2)",
        Overlap::Concurrent(NonZeroUsize::new(2).unwrap()),
    ),
];

/// One schedule's policy and final counts.
#[derive(Debug, Clone)]
pub struct Row {
    /// The policy's name, as in [`POLICIES`].
    pub policy: &'static str,
    /// The policy.
    pub overlap: Overlap,
    /// The counts the schedule returned.
    pub stats: PeriodicStats,
}

impl Row {
    /// Ticks that were waiting for a run when the stop came, and so never
    /// ran (`Overlap::Queue` only; at most one).
    pub fn forgotten(&self) -> u64 {
        self.stats.ticks - self.stats.started - self.stats.skipped
    }
}

/// What [`run`] observed.
#[derive(Debug)]
pub struct Report {
    /// One row per policy, in the order of [`POLICIES`].
    pub rows: Vec<Row>,
    /// When the schedules were asked to stop, counted from the start.
    pub stopped_at: Duration,
    /// When the last run ended (and the scope with it).
    pub ended_at: Duration,
}

/// Runs the four schedules for [`RUN_FOR`] (or until asked to stop, by a
/// signal when run under `#[tethered::main]`), stops them, and reports
/// their final counts.
pub async fn run() -> Result<Report, ScopeError> {
    let start = Instant::now();
    let (rows, stopped_at) = Scope::builder()
        .name("periodic_overlap")
        .run(async |scope| {
            let schedules: Vec<_> = POLICIES
                .iter()
                .map(|&(policy, overlap)| {
                    let schedule = Periodic::every(PERIOD).overlap(overlap).name(policy);
                    let handle = scope.spawn_named(policy, schedule.run(|| sleep(RUN_TAKES)));
                    (policy, overlap, handle)
                })
                .collect();

            tokio::select! {
                () = sleep(RUN_FOR) => {}
                _ = tethered::stop_requested() => {} // Ctrl-C: report what ran so far
            }
            let stopped_at = start.elapsed();
            scope.stop("the demo is over");

            let mut rows = Vec::new();
            for (policy, overlap, handle) in schedules {
                let stats = match handle.join().await {
                    Outcome::Completed(Ok(stats)) => stats,
                    other => panic!("schedule `{policy}` did not stop cleanly: {other:?}"),
                };
                rows.push(Row {
                    policy,
                    overlap,
                    stats,
                });
            }
            (rows, stopped_at)
        })
        .await?;
    Ok(Report {
        rows,
        stopped_at,
        ended_at: start.elapsed(),
    })
}

/// Reads one count out of a row's stats.
type Count = fn(&PeriodicStats) -> u64;

/// The table's columns: a header and the count under it.
const COLUMNS: [(&str, Count); 6] = [
    ("ticks", |s| s.ticks),
    ("started", |s| s.started),
    ("completed", |s| s.completed),
    ("skipped", |s| s.skipped),
    ("cancelled_by_overlap", |s| s.cancelled_by_overlap),
    ("max_concurrent", |s| s.max_concurrent),
];

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "a tick every {} ms, each run takes {} ms; stopped at {} ms, \
             the last run ended at {} ms",
            PERIOD.as_millis(),
            RUN_TAKES.as_millis(),
            self.stopped_at.as_millis(),
            self.ended_at.as_millis(),
        )?;
        writeln!(f)?;

        let policy_width = self
            .rows
            .iter()
            .map(|row| row.policy.len())
            .chain(["policy".len()])
            .max()
            .unwrap_or_default();
        write!(f, "{:<policy_width$}", "policy")?;
        for (header, _) in COLUMNS {
            write!(f, "  {header}")?;
        }
        writeln!(f)?;
        for row in &self.rows {
            write!(f, "{:<policy_width$}", row.policy)?;
            for (header, value) in COLUMNS {
                write!(f, "  {:>width$}", value(&row.stats), width = header.len())?;
            }
            writeln!(f)?;
        }

        for row in &self.rows {
            let forgotten = row.forgotten();
            if forgotten > 0 {
                writeln!(f)?;
                write!(
                    f,
                    "{}: {forgotten} tick was waiting for its run when the stop came; \
                     a stop forgets it (ticks = started + skipped + {forgotten})",
                    row.policy,
                )?;
            }
        }
        Ok(())
    }
}
