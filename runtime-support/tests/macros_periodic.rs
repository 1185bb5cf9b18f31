//! What `#[periodic]` expands into, checked by behaviour under paused time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethered::{CancelKind, PeriodicError, PeriodicStats, PeriodicTask, Scope, periodic};
use tokio::time::{Instant, sleep};

/// Runs a schedule for `for_how_long`, stops it, returns its final counts.
async fn run_for(schedule: PeriodicTask, for_how_long: Duration) -> PeriodicStats {
    Scope::run(async |scope| {
        let handle = scope.spawn(schedule);
        sleep(for_how_long).await;
        handle.stop("done");
        handle.join().await.unwrap().unwrap()
    })
    .await
    .unwrap()
}

#[periodic(every = "1s")]
async fn count(hits: Arc<AtomicU32>, step: u32) {
    hits.fetch_add(step, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn each_run_gets_its_own_copy_of_the_arguments() {
    let hits = Arc::new(AtomicU32::new(0));
    let stats = run_for(count(hits.clone(), 10), Duration::from_millis(4_500)).await;
    assert_eq!((stats.ticks, stats.completed), (5, 5));
    assert_eq!(hits.load(Ordering::SeqCst), 50);
}

/// An argument compiled out by `#[cfg]` has no copy in the runs, and one
/// compiled in has its own.
#[periodic(every = "1s")]
async fn count_configured(
    hits: Arc<AtomicU32>,
    #[cfg(not(test))] compiled_out: Arc<AtomicU32>,
    #[cfg(test)] step: u32,
) {
    #[cfg(not(test))]
    compiled_out.fetch_add(1, Ordering::SeqCst);
    hits.fetch_add(step, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn arguments_keep_their_cfg_in_each_run() {
    let hits = Arc::new(AtomicU32::new(0));
    let stats = run_for(
        count_configured(hits.clone(), 3),
        Duration::from_millis(1_500),
    )
    .await;
    assert_eq!(stats.completed, 2);
    assert_eq!(hits.load(Ordering::SeqCst), 6);
}

mod inner_attributes {
    #![deny(unused_mut)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// An inner attribute stays at the top of the body.
    #[tethered::periodic(every = "1s")]
    pub(super) async fn count(hits: Arc<AtomicU32>) {
        #![allow(unused_mut)]
        let mut step = 1;
        hits.fetch_add(step, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn inner_attributes_of_the_body_are_kept() {
    let hits = Arc::new(AtomicU32::new(0));
    let stats = run_for(
        inner_attributes::count(hits.clone()),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(stats.completed, 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[derive(Debug)]
struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue full")
    }
}

fn check(n: u32) -> Result<u32, Full> {
    if n == 2 { Err(Full) } else { Ok(n) }
}

#[periodic(every = "1s", on_error = stop, name = "drain")]
async fn drain(runs: Arc<AtomicU32>) -> Result<(), Full> {
    let n = runs.fetch_add(1, Ordering::SeqCst);
    check(n)?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn question_mark_in_the_body_and_on_error_stop() {
    let started = Instant::now();
    let error = drain(Arc::new(AtomicU32::new(0))).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let PeriodicError::RunFailed {
        tick,
        failure,
        stats,
    } = error
    else {
        panic!("{error}")
    };
    assert_eq!(tick, 2);
    assert_eq!(failure.to_string(), "failed: queue full");
    assert_eq!((stats.completed, stats.failed), (2, 1));
}

#[periodic(every = "1s", overlap = concurrent(2))]
async fn slow(running: Arc<Mutex<(u32, u32)>>) {
    {
        let mut running = running.lock().unwrap();
        running.0 += 1;
        running.1 = running.1.max(running.0);
    }
    sleep(Duration::from_millis(2_999)).await;
    running.lock().unwrap().0 -= 1;
}

#[tokio::test(start_paused = true)]
async fn overlap_concurrent_n() {
    let running = Arc::new(Mutex::new((0, 0)));
    let stats = run_for(slow(running.clone()), Duration::from_millis(8_500)).await;
    assert_eq!((stats.ticks, stats.started, stats.skipped), (9, 6, 3));
    assert_eq!(stats.max_concurrent, 2);
    assert_eq!(running.lock().unwrap().1, 2);
}

#[periodic(every = "1s", overlap = cancel, name = "refresh")]
async fn replaced(reasons: Arc<Mutex<Vec<tethered::CancelReason>>>) {
    struct Record(Arc<Mutex<Vec<tethered::CancelReason>>>);
    impl Drop for Record {
        fn drop(&mut self) {
            if let Some(reason) = tethered::current().cancel_reason() {
                self.0.lock().unwrap().push(reason);
            }
        }
    }
    let _record = Record(reasons);
    sleep(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn overlap_cancel_reasons_name_the_schedule_and_its_fn() {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let stats = run_for(replaced(reasons.clone()), Duration::from_millis(2_500)).await;
    assert_eq!(stats.cancelled_by_overlap, 2);
    let reasons = reasons.lock().unwrap();
    assert_eq!(reasons[0].kind(), CancelKind::Overlap);
    assert_eq!(reasons[0].origin(), Some("refresh"));
    assert!(reasons[0].location().file().ends_with("macros_periodic.rs"));
}

#[periodic(every = "1s", missed = burst, first = after, timeout = "300ms")]
async fn options_all_apply(starts: Arc<Mutex<Vec<Duration>>>, origin: Instant) {
    starts.lock().unwrap().push(origin.elapsed());
    sleep(Duration::from_millis(500)).await;
}

#[tokio::test(start_paused = true)]
async fn first_after_missed_and_timeout_options() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let stats = run_for(
        options_all_apply(starts.clone(), Instant::now()),
        Duration::from_millis(2_500),
    )
    .await;
    assert_eq!(
        *starts.lock().unwrap(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(stats.timed_out, 2, "each run outlived its 300ms");
}

#[periodic(every = "1s", jitter = "400ms", overlap = concurrent(4))]
async fn jittered(starts: Arc<Mutex<Vec<Duration>>>, origin: Instant) {
    starts.lock().unwrap().push(origin.elapsed());
}

#[tokio::test(start_paused = true)]
async fn jitter_with_the_default_seed_is_deterministic() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let starts = Arc::new(Mutex::new(Vec::new()));
        run_for(
            jittered(starts.clone(), Instant::now()),
            Duration::from_secs(20),
        )
        .await;
        runs.push(starts.lock().unwrap().clone());
    }
    assert_eq!(runs[0], runs[1]);
    for (k, start) in runs[0].iter().enumerate() {
        let offset = *start - Duration::from_secs(k as u64);
        assert!(offset <= Duration::from_millis(400), "tick {k}: {offset:?}");
    }
}

#[derive(Clone)]
struct Cache {
    refreshed: Arc<AtomicU32>,
}

impl Cache {
    #[periodic(every = "1s")]
    async fn refresh(&self) {
        self.refreshed.fetch_add(1, Ordering::SeqCst);
    }

    #[periodic(every = "2s")]
    async fn refresh_owned(self) {
        self.refreshed.fetch_add(10, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn methods_get_their_own_copy_of_self() {
    let cache = Cache {
        refreshed: Arc::new(AtomicU32::new(0)),
    };
    let by_ref = cache.refresh();
    let by_value = cache.clone().refresh_owned();
    run_for(by_ref, Duration::from_millis(2_500)).await;
    run_for(by_value, Duration::from_millis(2_500)).await;
    assert_eq!(cache.refreshed.load(Ordering::SeqCst), 3 + 20);
}

/// A schedule is a supervised child as it is: its failed run (with
/// `on_error = stop`) is the child's failure, which the policy restarts, and
/// the stop at shutdown ends it cleanly.
#[tokio::test(start_paused = true)]
async fn a_schedule_is_a_supervised_child() {
    let runs = Arc::new(AtomicU32::new(0));
    let supervised = tethered::supervise! {
        child "drain" (permanent, backoff none) => drain(runs.clone()),
        body |_sv| { sleep(Duration::from_millis(5_500)).await },
    }
    .unwrap();
    // Runs 0 and 1 pass, run 2 fails at 2 s, and the restarted schedule
    // runs at once, then at 3, 4 and 5 s.
    assert_eq!(runs.load(Ordering::SeqCst), 7);
    let stats = supervised.report.stats();
    assert_eq!((stats.failed, stats.restarted), (1, 1));
    let drain = supervised.report.child("drain").unwrap();
    assert!(
        matches!(drain.exit(), Some(tethered::ChildExit::Completed)),
        "{drain}"
    );
}

/// `every = (expression)`: a period known only at run time, computed from
/// the fn's arguments when it is called.
#[periodic(every = (period * 2), overlap = skip)]
async fn every_other(hits: Arc<AtomicU32>, period: Duration) {
    hits.fetch_add(1, Ordering::SeqCst);
}

struct Poller {
    period: Duration,
    hits: Arc<AtomicU32>,
}

impl Clone for Poller {
    fn clone(&self) -> Self {
        Poller {
            period: self.period,
            hits: self.hits.clone(),
        }
    }
}

impl Poller {
    #[periodic(every = (self.period), first = after)]
    async fn poll(&self) {
        self.hits.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn every_takes_an_expression_evaluated_when_the_fn_is_called() {
    let hits = Arc::new(AtomicU32::new(0));
    // Ticks at 0, 500 ms, 1 s, 1.5 s and 2 s.
    let stats = run_for(
        every_other(hits.clone(), Duration::from_millis(250)),
        Duration::from_millis(2_100),
    )
    .await;
    assert_eq!((stats.ticks, hits.load(Ordering::SeqCst)), (5, 5));

    let poller = Poller {
        period: Duration::from_millis(300),
        hits: Arc::new(AtomicU32::new(0)),
    };
    // The first tick one period in: 300, 600 and 900 ms.
    let stats = run_for(poller.poll(), Duration::from_millis(1_000)).await;
    assert_eq!((stats.ticks, poller.hits.load(Ordering::SeqCst)), (3, 3));
}

#[periodic(every = "1s", on_stop = continue)]
async fn heartbeat(beats: Arc<AtomicU32>) {
    beats.fetch_add(1, Ordering::SeqCst);
}

/// `on_stop = continue`: a stop does not end the schedule (a heartbeat goes
/// on while the service drains); a cancellation does.
#[tokio::test(start_paused = true)]
async fn on_stop_continue_keeps_ticking_until_cancelled() {
    let beats = Arc::new(AtomicU32::new(0));
    let outcome = Scope::run(async |scope| {
        let schedule = scope.spawn(heartbeat(beats.clone()));
        sleep(Duration::from_millis(500)).await;
        scope.stop("deploy");
        sleep(Duration::from_secs(2)).await;
        // Beats at 0, 1 and 2 s: the stop at 0.5 s changed nothing.
        assert_eq!(beats.load(Ordering::SeqCst), 3);
        assert!(!schedule.is_finished());
        schedule.cancel_and_wait("drained").await
    })
    .await
    .unwrap();
    let tethered::Outcome::Cancelled(reason) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reason.message(), Some("drained"));
    assert_eq!(beats.load(Ordering::SeqCst), 3);
}

#[periodic(every = (period))]
async fn configured_tick(period: Duration, hits: Arc<AtomicU32>) {
    hits.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn a_period_computed_as_zero_ends_the_schedule_with_an_error() {
    // A literal zero is a compile error; a computed one cannot be.
    let hits = Arc::new(AtomicU32::new(0));
    let ended = configured_tick(Duration::ZERO, hits.clone()).await;
    assert!(matches!(ended, Err(PeriodicError::ZeroPeriod)), "{ended:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "never ran");
}

#[periodic(every = "1s", timeout = "500000000000y")]
async fn with_a_timeout_of_ages(hits: Arc<AtomicU32>) {
    hits.fetch_add(1, Ordering::SeqCst);
    sleep(Duration::from_millis(500)).await;
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_for_an_instant_never_passes() {
    let hits = Arc::new(AtomicU32::new(0));
    let stats = run_for(
        with_a_timeout_of_ages(hits.clone()),
        Duration::from_millis(2_500),
    )
    .await;
    assert_eq!((stats.completed, stats.timed_out), (3, 0));
}
