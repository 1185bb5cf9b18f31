//! What `compare` and `instructions` share: the helpers their scenarios
//! count and wait with.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Yields until `counter` reaches `n`, then a few more times so that the last
/// children to count themselves have also returned `Pending` (and registered
/// their wakers) before the caller goes on.
pub(crate) async fn wait_started(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Acquire) < n {
        tokio::task::yield_now().await;
    }
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

/// Counts finished children and wakes `done` at the last one.
pub(crate) struct Finished {
    count: AtomicUsize,
    last: usize,
    pub(crate) done: Notify,
}

impl Finished {
    pub(crate) fn new(last: usize) -> Arc<Self> {
        Arc::new(Finished {
            count: AtomicUsize::new(0),
            last,
            done: Notify::new(),
        })
    }

    pub(crate) fn one(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.last {
            self.done.notify_one();
        }
    }
}

/// Counts the runs of a schedule, and wakes `done` at the last one.
#[derive(Default)]
pub(crate) struct TickCount {
    pub(crate) ran: AtomicUsize,
    pub(crate) done: Notify,
}

/// One run of `periodic_tick`, on both sides: an empty body but for the count
/// that tells the tethered side when to stop (the baseline pays for it too).
pub(crate) async fn tick_run(count: Arc<TickCount>, last: usize) {
    if count.ran.fetch_add(1, Ordering::Relaxed) + 1 == last {
        count.done.notify_one();
    }
}
