//! Side-by-side benchmark: tethered against the plain tokio code a user would
//! write instead.
//!
//! Run with `cargo bench -p tethered --bench compare`. Each scenario runs its
//! tethered side and its tokio baseline in the same process, on the same
//! runtime (a multi-thread one with 2 worker threads, except `periodic_tick`
//! and the scaling scenarios, see there), alternating (the side that goes first swaps every round; for
//! `periodic_lateness_median` both sides run at once, see there) for
//! `ROUNDS` short rounds, and prints one line with the medians:
//!
//! ```text
//! compare scenario=<name> n=<N> tethered_ns=<ns/op> baseline=<what> baseline_ns=<ns/op> ratio=<t/b> spread=<min>..<max>
//! ```
//!
//! `ratio` is the ratio of the two medians; `spread` is the lowest and the
//! highest ratio of one round's two sides, run back to back: how much the
//! machine moved the figure while it was measured. A scenario during which
//! the hypervisor took more than a few percent of the CPU time (`steal` in
//! `/proc/stat`) says so, with `steal=<percent>` on its line and a note
//! under it.
//!
//! (`await_points` compares tethered with itself: where code waits recorded,
//! and not.)
//!
//! Set `COMPARE_SAMPLES=1` to also print every round's sample to stderr, and
//! `COMPARE_ONLY=<name>,<name>` to run only those scenarios.
//!
//! Every measured body runs inside a task spawned on the runtime (not in
//! `block_on`, which polls on the calling thread, a third thread competing for
//! the two cores), so parent and children share the runtime's two workers, as
//! they do in a server.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{Future, pending};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

use common::{Finished, TickCount, tick_run, wait_started};
use tethered::{Overlap, Periodic, Scope, Supervisor};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Timed rounds per side (each after an untimed run of the same side).
/// Many short rounds rather than a few long ones: a burst of noise on a
/// shared machine then spoils a round or two, which the median ignores and
/// the spread shows, rather than a third of the samples.
const ROUNDS: usize = 31;
const N: usize = 20_000;

// ---------------------------------------------------------------------------
// Counting allocator (for `idle_memory`).

/// Wraps the system allocator and, while `COUNTING` is set, tracks the net
/// change in allocated bytes. Counting is off outside the memory scenario so
/// the timing scenarios do not pay for a contended atomic on every
/// allocation. The net change over a window (allocations minus deallocations
/// made in it) is the growth of live memory, whenever the freed blocks were
/// allocated.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        NET_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to `System`; the wrapper only
// updates a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Starts a counting window.
fn start_counting() {
    NET_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Ends the counting window and returns the net bytes allocated in it.
fn stop_counting() -> isize {
    COUNTING.store(false, Ordering::SeqCst);
    NET_BYTES.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// Harness.

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("build the tokio runtime")
}

/// Runs `f` as a task on the runtime and returns what it measured.
fn on_runtime<F, Fut>(rt: &Runtime, f: F) -> f64
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = f64> + Send + 'static,
{
    rt.block_on(rt.spawn(f())).expect("bench task panicked")
}

/// Runs both sides `ROUNDS` times, alternating which goes first, and returns
/// every round's figures.
///
/// Each timed run comes right after an untimed run of the same side. Without
/// it a run pays for the allocator state the *other* side left behind (free
/// lists full of the other side's block sizes, trimmed heap): measured here,
/// a side that follows the other side ran up to 1.5x slower than one that
/// follows itself, which made the ratio swing with the run order.
fn compare<T, TFut, B, BFut>(rt: &Runtime, tethered: T, baseline: B) -> Measured
where
    T: Fn() -> TFut,
    TFut: Future<Output = f64> + Send + 'static,
    B: Fn() -> BFut,
    BFut: Future<Output = f64> + Send + 'static,
{
    let warm_then_time = |side: &dyn Fn() -> f64| {
        black_box(side());
        side()
    };
    let run_t = || on_runtime(rt, &tethered);
    let run_b = || on_runtime(rt, &baseline);
    let before = cpu_times();
    let mut t = Vec::with_capacity(ROUNDS);
    let mut b = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            t.push(warm_then_time(&run_t));
            b.push(warm_then_time(&run_b));
        } else {
            b.push(warm_then_time(&run_b));
            t.push(warm_then_time(&run_t));
        }
    }
    Measured::new(t, b, before)
}

/// Runs both sides at the same time, each in a task of its own, `rounds`
/// times (the side spawned first swaps every round), and returns every
/// round's figures. For scenarios on the real clock, whose results move
/// with the timer's phase from round to round: run together, both sides see
/// the same timer wake-ups, and a round compares them under the same
/// conditions. No untimed runs: the allocator's state is lost in the noise
/// of a timer.
fn compare_concurrent<T, TFut, B, BFut>(
    rt: &Runtime,
    rounds: usize,
    tethered: T,
    baseline: B,
) -> Measured
where
    T: Fn() -> TFut,
    TFut: Future<Output = f64> + Send + 'static,
    B: Fn() -> BFut,
    BFut: Future<Output = f64> + Send + 'static,
{
    let before = cpu_times();
    let mut t = Vec::with_capacity(rounds);
    let mut b = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (tethered, baseline) = if round % 2 == 0 {
            let tethered = rt.spawn(tethered());
            (tethered, rt.spawn(baseline()))
        } else {
            let baseline = rt.spawn(baseline());
            (rt.spawn(tethered()), baseline)
        };
        let (tethered, baseline) = rt.block_on(async { (tethered.await, baseline.await) });
        t.push(tethered.expect("bench task panicked"));
        b.push(baseline.expect("bench task panicked"));
    }
    Measured::new(t, b, before)
}

/// Both sides of a scenario, round by round, and the share of the CPU time
/// the hypervisor stole while they ran.
struct Measured {
    tethered: Vec<f64>,
    baseline: Vec<f64>,
    steal: Option<f64>,
}

impl Measured {
    fn new(tethered: Vec<f64>, baseline: Vec<f64>, before: Option<CpuTimes>) -> Self {
        if std::env::var_os("COMPARE_SAMPLES").is_some() {
            eprintln!("  tethered samples: {tethered:.0?}\n  baseline samples: {baseline:.0?}");
        }
        let steal = before.zip(cpu_times()).map(|(before, after)| {
            let total = after.total.saturating_sub(before.total).max(1);
            after.steal.saturating_sub(before.steal) as f64 / total as f64
        });
        Measured {
            tethered,
            baseline,
            steal,
        }
    }

    /// The lowest and the highest ratio of a round's two sides.
    fn spread(&self) -> (f64, f64) {
        self.tethered
            .iter()
            .zip(&self.baseline)
            .map(|(t, b)| t / b)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), ratio| {
                (low.min(ratio), high.max(ratio))
            })
    }
}

/// Steal above this share of the CPU time is worth a note.
const HEAVY_STEAL: f64 = 0.03;

/// The machine's CPU time so far, in ticks: all of it, and what the
/// hypervisor stole (time this VM's CPUs wanted to run and were not given).
#[derive(Clone, Copy)]
struct CpuTimes {
    total: u64,
    steal: u64,
}

/// From `/proc/stat`'s first line (Linux); `None` elsewhere.
fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    Some(CpuTimes {
        total: fields.iter().take(8).sum(),
        steal: *fields.get(7)?,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

/// Prints a scenario's line: the medians, their ratio, the spread of the
/// rounds' ratios, and the steal time if it was heavy.
fn report(scenario: &str, n: usize, measured: Measured, baseline_name: &str) {
    let Measured {
        tethered,
        baseline,
        steal,
    } = &measured;
    let (tethered, baseline) = (median(tethered.clone()), median(baseline.clone()));
    let (low, high) = measured.spread();
    let heavy_steal = steal.filter(|steal| *steal >= HEAVY_STEAL);
    println!(
        "compare scenario={scenario} n={n} tethered_ns={tethered:.1} baseline={baseline_name} \
         baseline_ns={baseline:.1} ratio={:.3} spread={low:.2}..{high:.2}{}",
        tethered / baseline,
        heavy_steal.map_or(String::new(), |steal| format!(
            " steal={:.0}%",
            steal * 100.0
        )),
    );
    if let Some(steal) = heavy_steal {
        println!(
            "  note: the hypervisor took {:.0}% of this machine's CPU time while `{scenario}` ran; \
             its figures are noisier than usual",
            steal * 100.0
        );
    }
}

// ---------------------------------------------------------------------------
// Scenarios 1 and 2: spawn N trivial tasks and join them all.

/// Tethered side of `spawn_join` and `spawn_join_raw`: what a user who wants
/// the values writes, keeping every handle and joining them in spawn order
/// (the scope then finds no child left to wait for).
async fn tethered_spawn_join(n: usize) -> f64 {
    let start = Instant::now();
    let sum = Scope::run(async |scope| {
        let handles: Vec<_> = (0..n).map(|i| scope.spawn(async move { i })).collect();
        let mut sum = 0usize;
        for handle in handles {
            sum += handle.join().await.unwrap();
        }
        sum
    })
    .await
    .expect("scope failed");
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    per_op(elapsed, n)
}

/// Where the macros' recorded `.await`s wait, in `await_points`.
static CHILD_AWAIT: tethered::WaitSite =
    tethered::WaitSite::new(file!(), line!(), column!(), "std::future::ready(i).await");
static JOIN_AWAIT: tethered::WaitSite =
    tethered::WaitSite::new(file!(), line!(), column!(), "handle.join().await");

/// `tethered_spawn_join` with each `.await` recorded as `#[scoped]` and
/// `spawn!` record them (one in each child, one per join), against the same
/// code unrecorded: what recording where code waits costs.
async fn recorded_spawn_join(n: usize, record: bool) -> f64 {
    use tethered::__private::Recorded;

    let start = Instant::now();
    let sum = Scope::run(async |scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                scope.spawn(async move {
                    let ready = std::future::ready(i);
                    if record {
                        Recorded::new(ready, &CHILD_AWAIT).await
                    } else {
                        ready.await
                    }
                })
            })
            .collect();
        let mut sum = 0usize;
        for handle in handles {
            let joined = if record {
                Recorded::new(handle.join(), &JOIN_AWAIT).await
            } else {
                handle.join().await
            };
            sum += joined.unwrap();
        }
        sum
    })
    .await
    .expect("scope failed");
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    per_op(elapsed, n)
}

async fn joinset_spawn_join(n: usize) -> f64 {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(async move { i });
    }
    let mut sum = 0usize;
    while let Some(result) = set.join_next().await {
        sum += result.expect("task failed");
    }
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    per_op(elapsed, n)
}

async fn raw_spawn_join(n: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<JoinHandle<usize>> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
    let mut sum = 0usize;
    for handle in handles {
        sum += handle.await.expect("task failed");
    }
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    per_op(elapsed, n)
}

// ---------------------------------------------------------------------------
// Scenario 3: cancel N parked children and wait until all have ended.

async fn tethered_cancel_fanout(n: usize) -> f64 {
    let started = Arc::new(AtomicUsize::new(0));
    let cancelled_at = OnceLock::new();
    let result = Scope::run(async |scope| {
        for _ in 0..n {
            let started = started.clone();
            let _ = scope.spawn(async move {
                started.fetch_add(1, Ordering::Release);
                pending::<()>().await;
            });
        }
        wait_started(&started, n).await;
        cancelled_at.get_or_init(Instant::now);
        scope.cancel("bench");
        // The body's next `.await` would be interrupted; returning at once
        // is the same for the timing, and the scope still joins every child.
    })
    .await;
    let elapsed = cancelled_at.get().expect("body reached cancel").elapsed();
    // The body returned its value before the cancellation could interrupt
    // it, so the scope returns it.
    result.expect("scope failed");
    per_op(elapsed, n)
}

async fn token_cancel_fanout(n: usize) -> f64 {
    let started = Arc::new(AtomicUsize::new(0));
    let parent = CancellationToken::new();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let started = started.clone();
        let token = parent.child_token();
        set.spawn(async move {
            started.fetch_add(1, Ordering::Release);
            token.cancelled().await;
        });
    }
    wait_started(&started, n).await;
    let start = Instant::now();
    parent.cancel();
    while let Some(result) = set.join_next().await {
        result.expect("task failed");
    }
    per_op(start.elapsed(), n)
}

// ---------------------------------------------------------------------------
// Scenario 4: bytes per idle child.

/// Bytes per child parked in a scope. The handles are dropped: the scope
/// keeps track of its children (and joins them) by itself. The window opens
/// once the scope exists, so only the children are counted.
async fn tethered_idle_memory(n: usize) -> f64 {
    let started = Arc::new(AtomicUsize::new(0));
    let mut bytes = 0;
    let result = Scope::run(async |scope| {
        start_counting();
        for _ in 0..n {
            let started = started.clone();
            let _ = scope.spawn(async move {
                started.fetch_add(1, Ordering::Release);
                pending::<()>().await;
            });
        }
        wait_started(&started, n).await;
        bytes = stop_counting();
        scope.cancel("bench");
    })
    .await;
    result.expect("scope failed");
    bytes as f64 / n as f64
}

/// Bytes per tokio task parked on its own child token, the tokio way to get
/// per-task cancellation. The `JoinHandle`s are kept (as a user who wants to
/// wait for the tasks does), in a `Vec` that grows like the scope's registry.
async fn token_idle_memory(n: usize) -> f64 {
    let started = Arc::new(AtomicUsize::new(0));
    let parent = CancellationToken::new();
    start_counting();
    let mut handles = Vec::new();
    for _ in 0..n {
        let started = started.clone();
        let token = parent.child_token();
        handles.push(tokio::spawn(async move {
            started.fetch_add(1, Ordering::Release);
            token.cancelled().await;
        }));
    }
    wait_started(&started, n).await;
    let bytes = stop_counting();
    parent.cancel();
    for handle in handles {
        handle.await.expect("task failed");
    }
    bytes as f64 / n as f64
}

// ---------------------------------------------------------------------------
// Local children: N futures polled by their scope's own task, against the
// hand-written alternative, a `FuturesUnordered` over the same futures.

/// `N` local children that return their index, every handle kept and
/// joined in order (as `tethered_spawn_join` does).
async fn tethered_local_spawn_join(n: usize) -> f64 {
    let start = Instant::now();
    let sum = Scope::run_local(|scope| {
        Box::pin(async {
            let handles: Vec<_> = (0..n)
                .map(|i| scope.spawn_local(async move { i }))
                .collect();
            let mut sum = 0usize;
            for handle in handles {
                sum += handle.join().await.unwrap();
            }
            sum
        })
    })
    .await
    .expect("scope failed");
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    per_op(elapsed, n)
}

/// The same futures in a `FuturesUnordered`, summed as they end.
async fn unordered_spawn_join(n: usize) -> f64 {
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let start = Instant::now();
    let mut set: FuturesUnordered<_> = (0..n).map(|i| async move { i }).collect();
    let mut sum = 0usize;
    while let Some(i) = set.next().await {
        sum += i;
    }
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    per_op(elapsed, n)
}

/// Bytes per idle local child (each parked on a `Notify` it borrows), its
/// handle kept.
async fn tethered_local_idle_memory(n: usize) -> f64 {
    let release = Notify::new();
    let mut bytes = 0;
    Scope::run_local(|scope| {
        Box::pin(async {
            start_counting();
            let handles: Vec<_> = (0..n)
                .map(|_| scope.spawn_local(release.notified()))
                .collect();
            // One poll of the scope: every child has started and waits.
            tokio::task::yield_now().await;
            bytes = stop_counting();
            release.notify_waiters();
            for handle in handles {
                handle.join().await.unwrap();
            }
        })
    })
    .await
    .expect("scope failed");
    bytes as f64 / n as f64
}

/// Bytes per idle future of a `FuturesUnordered` (each parked on a borrowed
/// `Notify`).
async fn unordered_idle_memory(n: usize) -> f64 {
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let release = Notify::new();
    start_counting();
    let mut set: FuturesUnordered<_> = (0..n).map(|_| release.notified()).collect();
    // One poll: every future has started and waits.
    std::future::poll_fn(|cx| {
        assert!(set.poll_next_unpin(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    let bytes = stop_counting();
    release.notify_waiters();
    while set.next().await.is_some() {}
    bytes as f64 / n as f64
}

// ---------------------------------------------------------------------------
// Scenario 5: the cost of one tick of a schedule whose body does nothing.
//
// Measured on a current_thread runtime whose clock is paused: when the
// runtime has nothing else to do, tokio moves the clock straight to the next
// timer, so a 1 ms tick costs no waiting and the wall time of `TICKS` ticks
// is the CPU work per tick (timer, wake-up, spawning, polling and reaping
// the run): the overhead a schedule adds. On the real clock both sides would
// spend ~1 ms per tick asleep and the ratio would say nothing (and 20,000
// ticks would take 20 s per run); the paused clock needs a current_thread
// runtime.

const TICKS: usize = 20_000;
const TICK_PERIOD: Duration = Duration::from_millis(1);

fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("build the paused tokio runtime")
}

/// `ticks` ticks of a `Periodic` (each run a task of the schedule's scope),
/// then a stop. ns per tick that fired (a tick or so may fire between the
/// last counted run and the stop; it is counted too).
async fn tethered_periodic_tick(ticks: usize) -> f64 {
    let count = Arc::new(TickCount::default());
    let periodic = Periodic::every(TICK_PERIOD).overlap(Overlap::Skip);
    let start = Instant::now();
    let outcome = Scope::run(async |scope| {
        let body = {
            let count = count.clone();
            move || tick_run(count.clone(), ticks)
        };
        let schedule = scope.spawn(periodic.run(body));
        count.done.notified().await;
        schedule.stop("done");
        schedule.join().await
    })
    .await;
    let elapsed = start.elapsed();
    let stats = outcome
        .expect("scope failed")
        .unwrap()
        .expect("schedule failed");
    assert!(stats.started >= ticks as u64 && stats.skipped == 0 && stats.missed == 0);
    per_op(elapsed, stats.ticks as usize)
}

/// The loop a user writes instead: an interval, each tick's body spawned into
/// a `JoinSet`, the finished runs reaped at each tick so it does not grow.
async fn interval_periodic_tick(ticks: usize) -> f64 {
    let count = Arc::new(TickCount::default());
    let start = Instant::now();
    let mut interval = tokio::time::interval(TICK_PERIOD);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut set = JoinSet::new();
    for _ in 0..ticks {
        interval.tick().await;
        while set.try_join_next().is_some() {}
        set.spawn(tick_run(count.clone(), ticks));
    }
    while let Some(result) = set.join_next().await {
        result.expect("run failed");
    }
    let elapsed = start.elapsed();
    assert_eq!(count.ran.load(Ordering::Relaxed), ticks);
    per_op(elapsed, ticks)
}

// ---------------------------------------------------------------------------
// Scenario 6: how late each run starts, on the real clock.
//
// Tick k is due at `start + k·period`, `start` being taken just before the
// schedule is spawned (on both sides: the tethered `Periodic` and the
// baseline's interval loop each run in a task of their own). A run's start is
// the first thing its future does, so the lateness covers the timer, the
// schedule's own work and the run task's spawn and first poll. The scenario
// reports the median lateness over the runs (in the `_ns` fields), on the
// multi-thread runtime with 2 workers, as a server would run it.
//
// Both sides share tokio's timer, which rounds every deadline up to its next
// millisecond and sleeps whole milliseconds from the current millisecond, so
// most of the lateness (~1 ms) is the timer's, and it wanders with the
// phase of the timer's grid: from one 2 s run to the next, the median moves
// between ~0.6 and ~1.6 ms on either side. Run one side after the other,
// that swing alone moved the ratio between 0.74 and 1.2; so the two sides
// run at the same time (`compare_concurrent`), each round comparing them on
// the same wake-ups.
//
// Ticks that never ran are left out of the median (there is no start to
// measure) and counted apart, printed after the scenario's line. With
// `Missed::Skip` a `Periodic` drops the next tick as soon as a tick fires
// more than a period late, which the millisecond timer often does at a 1 ms
// period, while tokio's `Interval` applies its missed-tick policy only past
// 5 ms late. The dropped ticks are the ones that would have started latest
// (right behind a late one), so leaving them out flatters the tethered
// median.

const LATENESS_TICKS: usize = 2_000;
/// Each round takes the ticks' 2 s: fewer rounds than the others.
const LATENESS_ROUNDS: usize = 11;
const LATENESS_PERIOD: Duration = Duration::from_millis(1);

/// Ticks that never ran, per timed run of `periodic_lateness`: (tethered,
/// baseline).
static NEVER_RAN: Mutex<(Vec<usize>, Vec<usize>)> = Mutex::new((Vec::new(), Vec::new()));

/// When each tick's run started, by tick number (a tick that never ran leaves
/// its slot empty).
fn run_starts(ticks: usize) -> Arc<Vec<OnceLock<Instant>>> {
    Arc::new((0..ticks).map(|_| OnceLock::new()).collect())
}

/// The median of each run's start minus its tick's due time, in ns, and the
/// number of ticks that never ran.
fn median_lateness(start: Instant, starts: &[OnceLock<Instant>]) -> (f64, usize) {
    let late: Vec<f64> = starts
        .iter()
        .enumerate()
        .filter_map(|(k, slot)| {
            let due = start + LATENESS_PERIOD * k as u32;
            slot.get()
                .map(|started| started.saturating_duration_since(due).as_nanos() as f64)
        })
        .collect();
    let never_ran = starts.len() - late.len();
    (median(late), never_ran)
}

async fn tethered_periodic_lateness(ticks: usize) -> f64 {
    let starts = run_starts(ticks);
    let done = Arc::new(Notify::new());
    // The baseline starts a run at every tick, whatever is still running; the
    // same semantics here (`Concurrent`), so that lateness is compared on the
    // same ticks. (With `Overlap::Skip`, a catch-up tick that fires before the
    // previous run's task was even polled is skipped, by design.)
    let every_tick = NonZeroUsize::new(1_024).expect("non-zero");
    let periodic = Periodic::every(LATENESS_PERIOD).overlap(Overlap::Concurrent(every_tick));
    let (start, outcome) = Scope::run(async |scope| {
        let body = {
            let (starts, done) = (starts.clone(), done.clone());
            move || {
                let (starts, done) = (starts.clone(), done.clone());
                async move {
                    let started = Instant::now();
                    // The tick's number counts the ticks that were dropped:
                    // it finds the due time.
                    let tick = Periodic::current_tick().expect("called in a run") as usize;
                    if let Some(slot) = starts.get(tick) {
                        let _ = slot.set(started);
                    }
                    if tick + 1 >= starts.len() {
                        done.notify_one();
                    }
                }
            }
        };
        let start = Instant::now();
        let schedule = scope.spawn(periodic.run(body));
        done.notified().await;
        schedule.stop("done");
        (start, schedule.join().await)
    })
    .await
    .expect("scope failed");
    outcome.unwrap().expect("schedule failed");
    let (median, never_ran) = median_lateness(start, &starts);
    NEVER_RAN.lock().unwrap().0.push(never_ran);
    median
}

async fn interval_periodic_lateness(ticks: usize) -> f64 {
    let starts = run_starts(ticks);
    let start = Instant::now();
    let schedule = tokio::spawn({
        let starts = starts.clone();
        async move {
            let mut interval = tokio::time::interval(LATENESS_PERIOD);
            interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut set = JoinSet::new();
            let first = interval.tick().await;
            let mut due = first;
            loop {
                // `Skip` keeps the ticks on the grid of the first one.
                let tick = ((due - first).as_nanos() / LATENESS_PERIOD.as_nanos()) as usize;
                if tick >= ticks {
                    break;
                }
                while set.try_join_next().is_some() {}
                let starts = starts.clone();
                set.spawn(async move {
                    let _ = starts[tick].set(Instant::now());
                });
                due = interval.tick().await;
            }
            while let Some(result) = set.join_next().await {
                result.expect("run failed");
            }
        }
    });
    schedule.await.expect("schedule failed");
    let (median, never_ran) = median_lateness(start, &starts);
    NEVER_RAN.lock().unwrap().1.push(never_ran);
    median
}

// ---------------------------------------------------------------------------
// Scenario 7: spawn and finish one dynamic child of a supervisor, against
// `TaskTracker::spawn` (the tokio-util way to track tasks without keeping
// their results). Both sides spawn N children that each count themselves;
// the last one wakes the measuring task.

async fn supervisor_spawn(n: usize) -> f64 {
    let finished = Finished::new(n);
    let mut elapsed = Duration::ZERO;
    Supervisor::builder()
        .run(async |sv| {
            let start = Instant::now();
            let all_done = finished.done.notified();
            for _ in 0..n {
                let finished = finished.clone();
                let _ = sv.spawn("job", async move { finished.one() });
            }
            all_done.await;
            elapsed = start.elapsed();
        })
        .await
        .expect("supervisor failed");
    per_op(elapsed, n)
}

async fn tracker_spawn(n: usize) -> f64 {
    let finished = Finished::new(n);
    let tracker = TaskTracker::new();
    let start = Instant::now();
    let all_done = finished.done.notified();
    for _ in 0..n {
        let finished = finished.clone();
        tracker.spawn(async move { finished.one() });
    }
    all_done.await;
    let elapsed = start.elapsed();
    tracker.close();
    tracker.wait().await;
    per_op(elapsed, n)
}

// ---------------------------------------------------------------------------
// Scenarios 7b and 7c: scaling. On a runtime with 4 worker threads, 4
// producers spawn N children between them into one shared scope (7b) or
// one supervisor (7c), all at once, against 4 producers sharing one
// `JoinSet` behind a mutex (what a user reaches for to spawn from several
// tasks into one set) or one `TaskTracker`. It shows whether a scope's
// registry is a point of contention: on a 2-core machine the absolute
// figures mean little, the ratio under the same contention does.

const PRODUCERS: usize = 4;

fn scaling_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(PRODUCERS)
        .enable_time()
        .build()
        .expect("build the 4-worker tokio runtime")
}

/// Producers are children of the scope, each spawning its share of the
/// children through a handle to the scope; the scope waits for them all.
async fn tethered_shared_scope(n: usize) -> f64 {
    let start = Instant::now();
    Scope::run(async |scope| {
        for _ in 0..PRODUCERS {
            let handle = scope.handle();
            let _ = scope.spawn(async move {
                for i in 0..n / PRODUCERS {
                    let _ = handle
                        .try_spawn(async move {
                            black_box(i);
                        })
                        .expect("the scope is open");
                }
            });
        }
    })
    .await
    .expect("scope failed");
    per_op(start.elapsed(), n)
}

async fn mutex_joinset_shared(n: usize) -> f64 {
    let start = Instant::now();
    let set = Arc::new(Mutex::new(JoinSet::new()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let set = set.clone();
            tokio::spawn(async move {
                for i in 0..n / PRODUCERS {
                    set.lock().unwrap().spawn(async move {
                        black_box(i);
                    });
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer failed");
    }
    let mut set = std::mem::take(&mut *set.lock().unwrap());
    while let Some(result) = set.join_next().await {
        result.expect("task failed");
    }
    per_op(start.elapsed(), n)
}

async fn supervisor_shared(n: usize) -> f64 {
    let finished = Finished::new(n / PRODUCERS * PRODUCERS);
    let mut elapsed = Duration::ZERO;
    Supervisor::builder()
        .run(async |sv| {
            let start = Instant::now();
            let all_done = finished.done.notified();
            for _ in 0..PRODUCERS {
                let (producer, finished) = (sv.clone(), finished.clone());
                let _ = sv.spawn("producer", async move {
                    for _ in 0..n / PRODUCERS {
                        let finished = finished.clone();
                        let _ = producer.spawn("job", async move { finished.one() });
                    }
                });
            }
            all_done.await;
            elapsed = start.elapsed();
        })
        .await
        .expect("supervisor failed");
    per_op(elapsed, n)
}

async fn tracker_shared(n: usize) -> f64 {
    let finished = Finished::new(n / PRODUCERS * PRODUCERS);
    let tracker = TaskTracker::new();
    let start = Instant::now();
    let all_done = finished.done.notified();
    for _ in 0..PRODUCERS {
        let (producer, finished) = (tracker.clone(), finished.clone());
        tracker.spawn(async move {
            for _ in 0..n / PRODUCERS {
                let finished = finished.clone();
                producer.spawn(async move { finished.one() });
            }
        });
    }
    all_done.await;
    let elapsed = start.elapsed();
    tracker.close();
    tracker.wait().await;
    per_op(elapsed, n)
}

// ---------------------------------------------------------------------------
// Scenario 8: a long-lived supervisor does not grow. 2,000,000 short-lived
// dynamic children go through one supervisor, ~1,000 at a time; the
// process's resident memory is read when 10% and when 100% of them have
// finished. The ratio is the growth (1.0: none).

const CHURN: usize = 2_000_000;
const CHURN_IN_FLIGHT: usize = 1_000;
const CHURN_ROUNDS: usize = 5;

/// Resident set size in bytes, from `/proc/self/statm` (Linux), after
/// asking glibc to give its free pages back: what stays resident is what is
/// in use (and the fragmentation around it), not what the allocator keeps
/// cached, which moves by hundreds of kilobytes from one reading to the next
/// and would hide or fake a growth of a few percent.
fn rss_bytes() -> f64 {
    release_free_memory();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(f64::NAN);
    pages * 4096.0
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: `malloc_trim` only returns free memory to the system; it is
    // safe to call at any time from any thread.
    #[allow(unsafe_code)]
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Returns (RSS at 10%, RSS at 100%, live heap bytes at 10%, at 100%).
async fn supervisor_churn() -> (f64, f64, isize, isize) {
    let in_flight = Arc::new(Semaphore::new(CHURN_IN_FLIGHT));
    let mut marks = (0.0, 0.0, 0, 0);
    Supervisor::builder()
        .run(async |sv| {
            start_counting();
            for i in 1..=CHURN {
                let permit = in_flight.clone().acquire_owned().await.expect("open");
                sv.spawn("churn", async move {
                    tokio::task::yield_now().await;
                    drop(permit);
                })
                .expect("supervisor open");
                if i == CHURN / 10 || i == CHURN {
                    // Every child started so far has finished.
                    let _all = in_flight
                        .acquire_many(CHURN_IN_FLIGHT as u32)
                        .await
                        .expect("open");
                    let heap = NET_BYTES.load(Ordering::SeqCst);
                    if i == CHURN {
                        (marks.1, marks.3) = (rss_bytes(), heap);
                    } else {
                        (marks.0, marks.2) = (rss_bytes(), heap);
                    }
                }
            }
            stop_counting();
            let stats = sv.stats();
            assert_eq!((stats.completed, stats.live), (CHURN as u64, 0));
        })
        .await
        .expect("supervisor failed");
    marks
}

// ---------------------------------------------------------------------------

fn main() {
    let rt = runtime();

    // First, in a fresh process: what earlier scenarios leave in the heap
    // would hide growth.
    if wanted("supervisor_churn") {
        // A few rounds, each with a supervisor of its own, reported by the
        // round with the median growth: the resident size moves by a few
        // hundred kilobytes with where the allocator happens to place
        // things, which is several percent of a ~5 MB process.
        let mut rounds: Vec<_> = (0..CHURN_ROUNDS).map(|_| on_runtime_marks(&rt)).collect();
        rounds.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
        if std::env::var_os("COMPARE_SAMPLES").is_some() {
            eprintln!(
                "  supervisor_churn rounds (rss 10%, rss 100%, heap 10%, heap 100%): {rounds:?}"
            );
        }
        let (rss_10, rss_100, heap_10, heap_100) = rounds[rounds.len() / 2];
        // For this scenario the `_ns` fields hold resident bytes, at 100% and
        // at 10% of the children.
        println!(
            "compare scenario=supervisor_churn n={CHURN} tethered_ns={rss_100:.1} \
             baseline=rss_at_10% baseline_ns={rss_10:.1} ratio={:.3}",
            rss_100 / rss_10
        );
        let heap_growth: Vec<isize> = rounds.iter().map(|round| round.3 - round.2).collect();
        println!(
            "  supervisor_churn: live heap growth from 10% to 100% of the children, per round: \
             {heap_growth:?} bytes (median round: {})",
            heap_100 - heap_10
        );
    }

    if wanted("supervisor_spawn") {
        let measured = compare(&rt, || supervisor_spawn(N), || tracker_spawn(N));
        report("supervisor_spawn", N, measured, "task_tracker");
    }

    if wanted("scaling_scope") || wanted("scaling_supervisor") {
        let scaling = scaling_runtime();
        if wanted("scaling_scope") {
            let measured = compare(
                &scaling,
                || tethered_shared_scope(N),
                || mutex_joinset_shared(N),
            );
            report("scaling_scope", N, measured, "mutex<joinset>");
        }
        if wanted("scaling_supervisor") {
            let measured = compare(&scaling, || supervisor_shared(N), || tracker_shared(N));
            report("scaling_supervisor", N, measured, "task_tracker");
        }
    }

    if wanted("spawn_join") {
        let measured = compare(&rt, || tethered_spawn_join(N), || joinset_spawn_join(N));
        report("spawn_join", N, measured, "joinset");
    }

    if wanted("await_points") {
        let measured = compare(
            &rt,
            || recorded_spawn_join(N, true),
            || recorded_spawn_join(N, false),
        );
        report("await_points", N, measured, "spawn_join_unrecorded");
    }

    if wanted("spawn_join_raw") {
        let measured = compare(&rt, || tethered_spawn_join(N), || raw_spawn_join(N));
        report("spawn_join_raw", N, measured, "tokio_spawn");
    }

    if wanted("local_spawn_join") {
        let measured = compare(
            &rt,
            || tethered_local_spawn_join(N),
            || unordered_spawn_join(N),
        );
        report("local_spawn_join", N, measured, "futures_unordered");
    }

    // Bytes per idle child, not nanoseconds.
    if wanted("local_idle_memory_bytes") {
        let measured = compare(
            &rt,
            || tethered_local_idle_memory(N),
            || unordered_idle_memory(N),
        );
        report("local_idle_memory_bytes", N, measured, "futures_unordered");
    }

    if wanted("cancel_fanout") {
        let measured = compare(&rt, || tethered_cancel_fanout(N), || token_cancel_fanout(N));
        report("cancel_fanout", N, measured, "joinset+child_token");
    }

    // For this scenario the `_ns` fields hold bytes per idle child, not
    // nanoseconds.
    if wanted("idle_memory_bytes") {
        let measured = compare(&rt, || tethered_idle_memory(N), || token_idle_memory(N));
        report("idle_memory_bytes", N, measured, "tokio_task+child_token");
    }

    if wanted("periodic_tick") {
        let paused = paused_runtime();
        let measured = compare(
            &paused,
            || tethered_periodic_tick(TICKS),
            || interval_periodic_tick(TICKS),
        );
        report("periodic_tick", TICKS, measured, "interval+joinset");
    }

    // For this scenario the `_ns` fields hold the median lateness of a run's
    // start in ns, not a time per operation.
    if wanted("periodic_lateness_median") {
        let measured = compare_concurrent(
            &rt,
            LATENESS_ROUNDS,
            || tethered_periodic_lateness(LATENESS_TICKS),
            || interval_periodic_lateness(LATENESS_TICKS),
        );
        report(
            "periodic_lateness_median",
            LATENESS_TICKS,
            measured,
            "interval+joinset",
        );
        let (tethered, baseline) = std::mem::take(&mut *NEVER_RAN.lock().unwrap());
        println!(
            "  periodic_lateness: ticks that never ran (of {LATENESS_TICKS}, median over runs): \
             tethered={} baseline={}",
            median_count(tethered),
            median_count(baseline)
        );
    }
}

/// Whether to run `scenario`: all of them, unless `COMPARE_ONLY` lists some
/// (comma-separated names).
fn wanted(scenario: &str) -> bool {
    match std::env::var("COMPARE_ONLY") {
        Ok(only) => only.split(',').any(|name| name.trim() == scenario),
        Err(_) => true,
    }
}

fn on_runtime_marks(rt: &Runtime) -> (f64, f64, isize, isize) {
    rt.block_on(rt.spawn(supervisor_churn()))
        .expect("bench task panicked")
}

fn median_count(counts: Vec<usize>) -> f64 {
    median(counts.into_iter().map(|count| count as f64).collect())
}
