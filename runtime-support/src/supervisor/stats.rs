//! [`SupervisorStats`]: what a supervisor has run, counted as it happens.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a supervisor's counts, from [`Supervisor::stats`](crate::Supervisor::stats).
///
/// Every child (static, dynamic or shield) is counted once when it starts
/// and once when it ends, as exactly one of completed, failed, panicked or
/// cancelled; a restart counts as a start too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SupervisorStats {
    /// Children running now.
    pub live: u64,
    /// Children started, restarts included.
    pub started: u64,
    /// Children that ended on their own without failing.
    pub completed: u64,
    /// Children that returned `Err`.
    pub failed: u64,
    /// Children that panicked.
    pub panicked: u64,
    /// Restarts of static children.
    pub restarted: u64,
    /// Children that were cancelled.
    pub cancelled: u64,
}

/// The live counters behind [`SupervisorStats`]: atomics, so that a child
/// counts itself as it ends, with no lock and no message.
///
/// Starts are counted by the spawning task and ends by the children, on
/// other threads: each side's counters sit on cache lines of their own (128
/// bytes apart, for CPUs that fetch lines in pairs), so that neither side's
/// writes keep evicting the other's.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) starts: Lines<Starts>,
    pub(crate) ends: Lines<Ends>,
}

#[derive(Debug, Default)]
pub(crate) struct Starts {
    pub(crate) started: AtomicU64,
    pub(crate) restarted: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Ends {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) cancelled: AtomicU64,
}

/// `T` alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Lines<T>(T);

impl<T> std::ops::Deref for Lines<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> SupervisorStats {
        // Ends are read before starts, so a child that starts and ends
        // between the reads is never counted as ended but not started.
        let completed = self.ends.completed.load(Ordering::Acquire);
        let failed = self.ends.failed.load(Ordering::Acquire);
        let panicked = self.ends.panicked.load(Ordering::Acquire);
        let cancelled = self.ends.cancelled.load(Ordering::Acquire);
        let started = self.starts.started.load(Ordering::Acquire);
        SupervisorStats {
            live: started.saturating_sub(
                completed
                    .saturating_add(failed)
                    .saturating_add(panicked)
                    .saturating_add(cancelled),
            ),
            started,
            completed,
            failed,
            panicked,
            restarted: self.starts.restarted.load(Ordering::Acquire),
            cancelled,
        }
    }
}
