//! Side-by-side benchmark: tethered against the plain tokio code a user would
//! write instead.
//!
//! Run with `cargo bench -p tethered --bench compare`. Each scenario runs its
//! tethered side and its tokio baseline in the same process, on the same
//! multi-thread runtime (2 worker threads), alternating (the side that goes
//! first swaps every round) for `ROUNDS` rounds, and prints one line with the
//! medians:
//!
//! ```text
//! compare scenario=<name> n=<N> tethered_ns=<ns/op> baseline=<what> baseline_ns=<ns/op> ratio=<t/b>
//! ```
//!
//! Set `COMPARE_SAMPLES=1` to also print every round's sample to stderr.
//!
//! Every measured body runs inside a task spawned on the runtime (not in
//! `block_on`, which polls on the calling thread, a third thread competing for
//! the two cores), so parent and children share the runtime's two workers, as
//! they do in a server.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{Future, pending};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tethered::Scope;
use tokio::runtime::Runtime;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Timed rounds per side (each after an untimed run of the same side).
const ROUNDS: usize = 11;
const N: usize = 100_000;

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
/// the medians (tethered, baseline).
///
/// Each timed run comes right after an untimed run of the same side. Without
/// it a run pays for the allocator state the *other* side left behind (free
/// lists full of the other side's block sizes, trimmed heap): measured here,
/// a side that follows the other side ran up to 1.5x slower than one that
/// follows itself, which made the ratio swing with the run order.
fn compare<T, TFut, B, BFut>(rt: &Runtime, tethered: T, baseline: B) -> (f64, f64)
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
    if std::env::var_os("COMPARE_SAMPLES").is_some() {
        eprintln!("  tethered samples: {t:.0?}\n  baseline samples: {b:.0?}");
    }
    (median(t), median(b))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

fn report(scenario: &str, n: usize, tethered: f64, baseline_name: &str, baseline: f64) {
    println!(
        "compare scenario={scenario} n={n} tethered_ns={tethered:.1} baseline={baseline_name} \
         baseline_ns={baseline:.1} ratio={:.3}",
        tethered / baseline
    );
}

/// Yields until `counter` reaches `n`, then a few more times so that the last
/// children to count themselves have also returned `Pending` (and registered
/// their wakers) before the caller goes on.
async fn wait_started(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Acquire) < n {
        tokio::task::yield_now().await;
    }
    for _ in 0..4 {
        tokio::task::yield_now().await;
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

fn main() {
    let rt = runtime();

    let (t, b) = compare(&rt, || tethered_spawn_join(N), || joinset_spawn_join(N));
    report("spawn_join", N, t, "joinset", b);

    let (t, b) = compare(&rt, || tethered_spawn_join(N), || raw_spawn_join(N));
    report("spawn_join_raw", N, t, "tokio_spawn", b);

    let (t, b) = compare(&rt, || tethered_cancel_fanout(N), || token_cancel_fanout(N));
    report("cancel_fanout", N, t, "joinset+child_token", b);

    // For this scenario the `_ns` fields hold bytes per idle child, not
    // nanoseconds.
    let (t, b) = compare(&rt, || tethered_idle_memory(N), || token_idle_memory(N));
    report("idle_memory_bytes", N, t, "tokio_task+child_token", b);
}
