//! Periodic schedules under paused time: overlap policies over 1,000 ticks,
//! missed ticks, drift, timeouts, failures, stop and cancel.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethered::{
    CancelKind, CancelReason, Missed, OnError, Overlap, Periodic, PeriodicError, PeriodicStats,
    Scope,
};
use tokio::time::{Instant, sleep};

const PERIOD: Duration = Duration::from_secs(1);

/// A run 3 periods long. One millisecond short of it, so that a run never
/// ends at the very instant a tick fires: that tie is decided by which task
/// the runtime polls first, and these tests count exactly.
const SLOW_RUN: Duration = Duration::from_millis(2_999);

/// Records, from the run's `Drop`, why it was cancelled.
struct RecordReason(Arc<Mutex<Vec<CancelReason>>>);

impl Drop for RecordReason {
    fn drop(&mut self) {
        if let Some(reason) = tethered::current().cancel_reason() {
            self.0.lock().unwrap().push(reason);
        }
    }
}

/// Counts the runs going at once, and the most ever seen.
#[derive(Clone, Default)]
struct Concurrency {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Concurrency {
    async fn slow_run(self) {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(running, Ordering::SeqCst);
        struct Leave(Arc<AtomicUsize>);
        impl Drop for Leave {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(self.now.clone());
        sleep(SLOW_RUN).await;
    }
}

/// Runs `periodic` with slow runs for exactly `ticks` ticks, then stops it;
/// returns the final counts and the most runs seen at once.
async fn slow_runs_for(periodic: Periodic, ticks: u32) -> (PeriodicStats, usize) {
    let concurrency = Concurrency::default();
    let runs = concurrency.clone();
    let stats = Scope::run(async |scope| {
        let schedule = scope.spawn(periodic.run(move || runs.clone().slow_run()));
        // Just after the last tick fired, before the next one.
        sleep(PERIOD * (ticks - 1) + Duration::from_millis(500)).await;
        schedule.stop("enough ticks");
        schedule.join().await.unwrap()
    })
    .await
    .unwrap()
    .unwrap();
    (stats, concurrency.max.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn overlap_skip_never_runs_two_at_once() {
    let (stats, max) = slow_runs_for(Periodic::every(PERIOD).overlap(Overlap::Skip), 1_000).await;
    assert_eq!(stats.ticks, 1_000);
    // Runs start at ticks 0, 3, 6, …, 999.
    assert_eq!(stats.started, 334);
    assert_eq!(stats.skipped, 666);
    assert_eq!(stats.completed, 334, "the last run finished after the stop");
    assert_eq!((stats.max_concurrent, max), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn overlap_cancel_replaces_the_running_run_every_tick() {
    let (stats, max) = slow_runs_for(Periodic::every(PERIOD).overlap(Overlap::Cancel), 1_000).await;
    assert_eq!(stats.ticks, 1_000);
    assert_eq!(stats.started, 1_000);
    assert_eq!(stats.cancelled_by_overlap, 999);
    assert_eq!(stats.completed, 1, "only the last run, after the stop");
    assert_eq!(stats.skipped, 0);
    assert_eq!((stats.max_concurrent, max), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn overlap_queue_holds_at_most_one_run() {
    let (stats, max) = slow_runs_for(Periodic::every(PERIOD).overlap(Overlap::Queue), 1_000).await;
    assert_eq!(stats.ticks, 1_000);
    // Runs go back to back from 0s: run n starts at n × 2.999s, so by the
    // last tick (999s) runs 0..=333 have started; every other tick was
    // either the one queued run or skipped.
    let started_by_last_tick = (999_000 / 2_999) + 1;
    assert_eq!(stats.started, started_by_last_tick);
    let queued_at_stop = stats.ticks - stats.started - stats.skipped;
    assert!(queued_at_stop <= 1, "at most one waiting: {stats:?}");
    assert_eq!(stats.skipped, 1_000 - 334 - queued_at_stop);
    assert_eq!((stats.max_concurrent, max), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn overlap_concurrent_allows_n_then_skips() {
    let two = NonZeroUsize::new(2).unwrap();
    let (stats, max) = slow_runs_for(
        Periodic::every(PERIOD).overlap(Overlap::Concurrent(two)),
        1_000,
    )
    .await;
    assert_eq!(stats.ticks, 1_000);
    // Of every three ticks, two start a run and one finds two running.
    assert_eq!(stats.started, 667);
    assert_eq!(stats.skipped, 333);
    assert_eq!((stats.max_concurrent, max), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_run_replaced_by_the_next_tick_knows_why() {
    let reasons: Arc<Mutex<Vec<CancelReason>>> = Arc::default();
    let seen = reasons.clone();
    Scope::run(async |scope| {
        let schedule = Periodic::every(PERIOD)
            .overlap(Overlap::Cancel)
            .name("refresh");
        let handle = scope.spawn(schedule.run(move || {
            let seen = seen.clone();
            async move {
                let _record = RecordReason(seen);
                sleep(SLOW_RUN).await;
            }
        }));
        sleep(Duration::from_millis(2_500)).await;
        handle.stop("done");
        handle.join().await.unwrap().unwrap();
    })
    .await
    .unwrap();
    let reasons = reasons.lock().unwrap();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].kind(), CancelKind::Overlap);
    assert_eq!(reasons[0].origin(), Some("refresh"));
    assert_eq!(
        reasons[0].message(),
        Some("tick 1 arrived while the run of tick 0 was still going")
    );
    assert_eq!(
        reasons[1].message(),
        Some("tick 2 arrived while the run of tick 1 was still going")
    );
    assert!(reasons[0].location().file().ends_with("tests/periodic.rs"));
}

/// Starts of instant runs, relative to the start of the test.
async fn run_starts(periodic: Periodic, body: impl AsyncFnOnce()) -> Vec<Duration> {
    let origin = Instant::now();
    let starts: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let record = starts.clone();
    Scope::run(async |scope| {
        let schedule = scope.spawn(periodic.run(move || {
            record.lock().unwrap().push(origin.elapsed());
            async {}
        }));
        body().await;
        schedule.stop("done");
        schedule.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    starts.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_run_knows_its_tick_and_skipped_ticks_keep_their_numbers() {
    let seen: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    let in_closure: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    assert_eq!(Periodic::current_tick(), None, "outside any run");
    Scope::run(async |scope| {
        let (seen, in_closure) = (seen.clone(), in_closure.clone());
        let schedule = scope.spawn(Periodic::every(PERIOD).overlap(Overlap::Skip).run(move || {
            in_closure.lock().unwrap().push(Periodic::current_tick());
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(Periodic::current_tick());
                // 2.5 periods: ticks 1 and 2 are skipped, 3 runs.
                sleep(PERIOD * 5 / 2).await;
                assert!(
                    Periodic::current_tick().is_some(),
                    "still known after an await"
                );
            }
        }));
        sleep(PERIOD * 9 + PERIOD / 2).await;
        schedule.stop("done");
        let stats = schedule.join().await.unwrap().unwrap();
        assert_eq!((stats.ticks, stats.started, stats.skipped), (10, 4, 6));
        assert_eq!((stats.completed, stats.failed), (4, 0));
    })
    .await
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), [Some(0), Some(3), Some(6), Some(9)]);
    assert_eq!(
        *in_closure.lock().unwrap(),
        [None; 4],
        "the closure runs before the run"
    );
}

fn secs(values: &[f64]) -> Vec<Duration> {
    values.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}

#[tokio::test(start_paused = true)]
async fn missed_ticks_per_policy_after_a_blocked_executor() {
    // Tick 0 fires, then the clock jumps 4.5s at once, as if the executor
    // had been blocked: ticks 1..=4 are all late.
    let blocked = async || {
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(4_500)).await;
        sleep(Duration::from_millis(1_600)).await;
    };
    // Overlapping runs are allowed, so that every tick that fires starts a
    // run and only the missed-tick policy shows.
    let every =
        || Periodic::every(PERIOD).overlap(Overlap::Concurrent(NonZeroUsize::new(8).unwrap()));
    let skip = run_starts(every().missed(Missed::Skip), blocked).await;
    assert_eq!(
        skip,
        secs(&[0.0, 4.5, 5.0, 6.0]),
        "one late run, back on the grid"
    );

    let burst = run_starts(every().missed(Missed::Burst), blocked).await;
    assert_eq!(
        burst,
        secs(&[0.0, 4.5, 4.5, 4.5, 4.5, 5.0, 6.0]),
        "every missed tick fires"
    );

    let delay = run_starts(every().missed(Missed::Delay), blocked).await;
    assert_eq!(delay, secs(&[0.0, 4.5, 5.5]), "the grid moved");
}

#[tokio::test(start_paused = true)]
async fn missed_ticks_are_counted() {
    let stats = Scope::run(async |scope| {
        let schedule = scope.spawn(Periodic::every(PERIOD).run(|| async {}));
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(4_500)).await;
        tokio::task::yield_now().await;
        schedule.stop("done");
        schedule.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert_eq!((stats.ticks, stats.missed), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn no_drift_after_ten_thousand_ticks() {
    let starts = run_starts(Periodic::every(Duration::from_millis(250)), async || {
        sleep(Duration::from_millis(250) * 9_999 + Duration::from_millis(100)).await;
    })
    .await;
    assert_eq!(starts.len(), 10_000);
    for (k, start) in starts.iter().enumerate() {
        assert_eq!(*start, Duration::from_millis(250) * k as u32, "tick {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn first_after_waits_one_period() {
    let starts = run_starts(Periodic::every(PERIOD).first_after(), async || {
        sleep(Duration::from_millis(2_500)).await;
    })
    .await;
    assert_eq!(starts, secs(&[1.0, 2.0]));
}

#[tokio::test(start_paused = true)]
async fn jitter_is_bounded_and_the_same_for_the_same_seed() {
    let jittered = || Periodic::every(PERIOD).jitter(Duration::from_millis(300), 42);
    let wait = async || sleep(Duration::from_secs(100)).await;
    let first = run_starts(jittered(), wait).await;
    let second = run_starts(jittered(), wait).await;
    assert_eq!(first, second);
    assert_eq!(first.len(), 100);
    for (k, start) in first.iter().enumerate() {
        let offset = *start - PERIOD * k as u32;
        assert!(offset <= Duration::from_millis(300), "tick {k}: {offset:?}");
    }
    assert!(
        first
            .iter()
            .enumerate()
            .any(|(k, s)| *s != PERIOD * k as u32)
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_longer_than_its_timeout_is_cancelled_with_a_timeout_reason() {
    let reasons: Arc<Mutex<Vec<CancelReason>>> = Arc::default();
    let seen = reasons.clone();
    let stats = Scope::run(async |scope| {
        let schedule = Periodic::every(Duration::from_secs(5))
            .timeout(Duration::from_secs(2))
            .name("sync");
        let handle = scope.spawn(schedule.run(move || {
            let seen = seen.clone();
            async move {
                let _record = RecordReason(seen);
                sleep(Duration::from_secs(60)).await;
            }
        }));
        sleep(Duration::from_secs(12)).await;
        handle.stop("done");
        handle.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert_eq!((stats.started, stats.timed_out, stats.completed), (3, 3, 0));
    let reasons = reasons.lock().unwrap();
    assert_eq!(reasons[0].kind(), CancelKind::Timeout);
    assert_eq!(reasons[0].message(), Some("the run of tick 0 exceeded 2s"));
}

#[tokio::test(start_paused = true)]
async fn on_error_continue_counts_and_goes_on() {
    let runs = Arc::new(AtomicU64::new(0));
    let count = runs.clone();
    let stats = Scope::run(async |scope| {
        let handle = scope.spawn(Periodic::every(PERIOD).run(move || {
            let n = count.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    1 => Err("bad batch"),
                    2 => panic!("bad state"),
                    _ => Ok(()),
                }
            }
        }));
        sleep(Duration::from_millis(4_500)).await;
        handle.stop("done");
        handle.join().await.unwrap().unwrap()
    })
    .await
    .expect("a failed run does not fail the enclosing scope");
    assert_eq!((stats.started, stats.completed, stats.failed), (5, 3, 2));
}

#[tokio::test(start_paused = true)]
async fn on_error_stop_ends_the_schedule_with_the_failure() {
    let started = Instant::now();
    let error = Periodic::every(PERIOD)
        .on_error(OnError::Stop)
        .run({
            let mut n = 0;
            move || {
                n += 1;
                let fail = n == 3;
                async move { if fail { Err("disk full") } else { Ok(()) } }
            }
        })
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let PeriodicError::RunFailed {
        tick,
        failure,
        stats,
    } = error
    else {
        panic!("{error}");
    };
    assert_eq!(tick, 2);
    assert_eq!(failure.to_string(), "failed: disk full");
    assert_eq!((stats.started, stats.completed, stats.failed), (3, 2, 1));
}

#[tokio::test(start_paused = true)]
async fn stopping_the_enclosing_scope_lets_the_current_run_finish() {
    let finished = Arc::new(AtomicU64::new(0));
    let count = finished.clone();
    let started = Instant::now();
    let stats = Scope::run(async |scope| {
        let handle = scope.spawn(Periodic::every(PERIOD).run(move || {
            let count = count.clone();
            async move {
                sleep(Duration::from_millis(700)).await;
                count.fetch_add(1, Ordering::SeqCst);
            }
        }));
        sleep(Duration::from_millis(2_200)).await;
        scope.stop("deploy");
        handle.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(2_700),
        "run 2 finished"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    assert_eq!((stats.started, stats.completed), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_enclosing_scope_cancels_the_schedule_and_its_run() {
    let reasons: Arc<Mutex<Vec<CancelReason>>> = Arc::default();
    let seen = reasons.clone();
    let stats = Periodic::every(PERIOD).name("poller");
    let live = stats.stats();
    let error = Scope::builder()
        .name("service")
        .run(async |scope| {
            scope.spawn_named(
                "poller-task",
                stats.run(move || {
                    let seen = seen.clone();
                    async move {
                        let _record = RecordReason(seen);
                        sleep(Duration::from_secs(60)).await;
                    }
                }),
            );
            sleep(Duration::from_millis(500)).await;
            scope.cancel("shutting down");
            std::future::pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_cancelled());
    let reasons = reasons.lock().unwrap();
    assert_eq!(reasons.len(), 1);
    let chain: Vec<_> = reasons[0].chain().map(|r| (r.kind(), r.origin())).collect();
    assert_eq!(
        chain,
        [
            (CancelKind::ParentCancelled, Some("poller")),
            (CancelKind::ParentCancelled, Some("poller-task")),
            (CancelKind::ParentCancelled, Some("service")),
            (CancelKind::Explicit, Some("service")),
        ],
        "{}",
        reasons[0]
    );
    let stats = live.get();
    assert_eq!((stats.started, stats.cancelled), (1, 1), "{stats:?}");
}

// ---------------------------------------------------------------------------
// Periods, deadlines and tick counts at their limits
// ---------------------------------------------------------------------------

/// Runs `periodic` (with instant runs) until `for_how_long` has passed, then
/// stops it and returns its final counts.
async fn run_for(periodic: Periodic, for_how_long: Duration) -> PeriodicStats {
    Scope::run(async |scope| {
        let schedule = scope.spawn(periodic.run(|| async {}));
        sleep(for_how_long).await;
        schedule.stop("enough");
        schedule.join().await.unwrap()
    })
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_period_too_long_to_add_to_an_instant_ticks_once_then_never() {
    let stats = run_for(Periodic::every(Duration::MAX), Duration::from_secs(3_600)).await;
    assert_eq!((stats.ticks, stats.completed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_largest_jitter_and_timeout_are_taken_as_never() {
    let periodic = Periodic::every(Duration::MAX)
        .jitter(Duration::MAX, 7)
        .timeout(Duration::MAX)
        .first_after();
    let stats = run_for(periodic, Duration::from_secs(3_600)).await;
    assert_eq!((stats.ticks, stats.timed_out), (0, 0));
    let stats = run_for(
        Periodic::every(PERIOD).timeout(Duration::MAX),
        Duration::from_millis(2_500),
    )
    .await;
    assert_eq!((stats.ticks, stats.completed, stats.timed_out), (3, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn a_schedule_still_ticks_and_stops_after_more_than_u32_max_ticks() {
    // 50 days of a 1 ms schedule: 4.32 billion ticks, past `u32::MAX`.
    let period = Duration::from_millis(1);
    let fifty_days = Duration::from_secs(50 * 86_400);
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let seen = ticks.clone();
    let stats = Scope::run(async |scope| {
        let schedule = scope.spawn(Periodic::every(period).run(move || {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(Periodic::current_tick().unwrap());
            }
        }));
        sleep(Duration::from_micros(1_500)).await; // ticks 0, 1 and 2
        tokio::time::advance(fifty_days).await; // a late tick, the rest missed
        sleep(Duration::from_millis(5)).await; // back on the grid
        schedule.stop("enough");
        schedule.join().await.unwrap()
    })
    .await
    .unwrap()
    .unwrap();
    let ticks = ticks.lock().unwrap();
    assert_eq!(ticks[..3], [0, 1, 2]);
    let after = &ticks[3..];
    assert!(after.len() >= 3, "{after:?}");
    assert!(
        after.iter().all(|&tick| tick > u64::from(u32::MAX)),
        "{after:?}"
    );
    assert!(after.windows(2).all(|pair| pair[0] < pair[1]), "{after:?}");
    // Counted, not stepped through one by one.
    assert!(stats.missed > 4_319_999_000, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn missed_delay_after_a_long_stall_moves_the_grid() {
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let seen = ticks.clone();
    let started = Instant::now();
    Scope::run(async |scope| {
        let schedule = scope.spawn(
            Periodic::every(Duration::from_secs(86_400 * 365))
                .missed(Missed::Delay)
                .run(move || {
                    let seen = seen.clone();
                    async move { seen.lock().unwrap().push(Instant::now()) }
                }),
        );
        sleep(Duration::from_secs(1)).await;
        schedule.stop("enough");
    })
    .await
    .unwrap();
    assert_eq!(*ticks.lock().unwrap(), [started]);
}

#[tokio::test(start_paused = true)]
async fn a_zero_period_is_an_error_not_a_spin() {
    let ended = Scope::run(async |scope| {
        scope
            .spawn(Periodic::every(Duration::ZERO).run(|| async {}))
            .join()
            .await
            .unwrap()
    })
    .await
    .unwrap();
    let error = ended.unwrap_err();
    assert!(matches!(error, PeriodicError::ZeroPeriod), "{error:?}");
    assert!(error.to_string().contains("zero"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_period_under_a_millisecond_ticks_once_a_millisecond() {
    let time = Duration::from_millis(20);
    let shorter = run_for(Periodic::every(Duration::from_nanos(100)), time).await;
    let one_ms = run_for(Periodic::every(Duration::from_millis(1)), time).await;
    assert_eq!(shorter, one_ms);
    assert!((20..=21).contains(&shorter.ticks), "{shorter:?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_that_never_returns_is_accepted_and_replaced_by_the_next_tick() {
    let periodic = Periodic::every(PERIOD).overlap(Overlap::Cancel);
    let stats = periodic.stats();
    Scope::run(async |scope| {
        let schedule = scope.spawn(periodic.run(|| async {
            loop {
                sleep(PERIOD / 4).await;
            }
        }));
        sleep(Duration::from_millis(2_500)).await;
        // A stop would wait for the run in progress, which never ends.
        assert!(schedule.cancel_and_wait("enough").await.is_cancelled());
    })
    .await
    .unwrap();
    let stats = stats.get();
    assert_eq!(
        (stats.ticks, stats.cancelled_by_overlap, stats.cancelled),
        (3, 2, 1)
    );
}
