//! Instruction counts: each `compare` scenario's tethered side and its tokio
//! baseline, counted by Valgrind's callgrind (instructions) and DHAT
//! (allocations), through the gungraun harness.
//!
//! Run with `cargo bench -p tethered --bench instructions` (it needs
//! `valgrind` and `gungraun-runner` 0.20.0 on `PATH`:
//! `cargo install gungraun-runner --version 0.20.0 --locked`). After
//! gungraun's own report it prints two lines per scenario, in the shape of
//! `compare`'s:
//!
//! ```text
//! instructions scenario=<name> tethered=<per op> baseline=<what> baseline_instructions=<per op> ratio=<t/b>
//! allocations scenario=<name> tethered=<blocks per op> baseline=<blocks per op> tethered_bytes=<per op> baseline_bytes=<per op>
//! ```
//!
//! Wall-clock time on a shared 2-core machine moves by tens of percent from
//! run to run; an instruction count does not move at all for the same
//! binary. The two answer different questions: `compare` says how long a
//! user waits (caches, contention, the scheduler's threads included), this
//! benchmark says how much work the code does, and changes by a few
//! instructions are visible here long before they are in `compare`.
//!
//! Every side runs on a current-thread runtime (one thread: callgrind
//! serialises threads anyway, and a second worker would add its parking to
//! the count) made before the count starts. Every side runs twice, with
//! `SMALL` and with `LARGE` operations, and a figure per operation is the
//! difference divided by `LARGE - SMALL`: what is paid once (the runtime's
//! entry, the scope's creation and end) cancels out, and what is left is the
//! cost of one more operation.

use std::future::{Future, pending};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use common::{Finished, TickCount, tick_run, wait_started};
use gungraun::{
    Callgrind, Dhat, EntryPoint, LibraryBenchmarkConfig, library_benchmark, library_benchmark_group,
};
use tethered::{Overlap, Periodic, Scope, Supervisor};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SMALL: usize = 100;
const LARGE: usize = 1_100;

/// The scenarios, in the order they are printed: (name, tethered side's
/// function, baseline's function, what the baseline is).
const SCENARIOS: &[(&str, &str, &str, &str)] = &[
    (
        "spawn_join",
        "spawn_join_tethered",
        "spawn_join_joinset",
        "joinset",
    ),
    (
        "spawn_join_raw",
        "spawn_join_tethered",
        "spawn_join_raw_tokio",
        "tokio_spawn",
    ),
    (
        "cancel_fanout",
        "cancel_fanout_tethered",
        "cancel_fanout_tokens",
        "joinset+child_token",
    ),
    (
        "supervisor_spawn",
        "supervisor_spawn_tethered",
        "supervisor_spawn_tracker",
        "task_tracker",
    ),
    (
        "periodic_tick",
        "periodic_tick_tethered",
        "periodic_tick_interval",
        "interval+joinset",
    ),
    (
        "local_spawn_join",
        "local_spawn_join_tethered",
        "local_spawn_join_unordered",
        "futures_unordered",
    ),
];

fn runtime(n: usize) -> (Runtime, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("build the tokio runtime");
    (rt, n)
}

/// A current-thread runtime whose clock is paused: a tick costs its work,
/// not its wait (as in `compare`'s `periodic_tick`).
fn paused_runtime(n: usize) -> (Runtime, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("build the paused tokio runtime");
    (rt, n)
}

fn run<F: Future>((rt, _): &(Runtime, usize), fut: F) -> F::Output {
    rt.block_on(fut)
}

// ---------------------------------------------------------------------------
// spawn_join and spawn_join_raw: n trivial children, every handle joined.

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn spawn_join_tethered(rt: (Runtime, usize)) -> usize {
    let n = rt.1;
    black_box(run(&rt, async {
        Scope::run(async |scope| {
            let handles: Vec<_> = (0..n).map(|i| scope.spawn(async move { i })).collect();
            let mut sum = 0usize;
            for handle in handles {
                sum += handle.join().await.unwrap();
            }
            sum
        })
        .await
        .expect("scope failed")
    }))
}

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn spawn_join_joinset(rt: (Runtime, usize)) -> usize {
    let n = rt.1;
    black_box(run(&rt, async {
        let mut set = JoinSet::new();
        for i in 0..n {
            set.spawn(async move { i });
        }
        let mut sum = 0usize;
        while let Some(result) = set.join_next().await {
            sum += result.expect("task failed");
        }
        sum
    }))
}

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn spawn_join_raw_tokio(rt: (Runtime, usize)) -> usize {
    let n = rt.1;
    black_box(run(&rt, async {
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
        let mut sum = 0usize;
        for handle in handles {
            sum += handle.await.expect("task failed");
        }
        sum
    }))
}

// ---------------------------------------------------------------------------
// cancel_fanout: n parked children, cancelled, waited for.

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn cancel_fanout_tethered(rt: (Runtime, usize)) {
    let n = rt.1;
    run(&rt, async {
        let started = Arc::new(AtomicUsize::new(0));
        Scope::run(async |scope| {
            for _ in 0..n {
                let started = started.clone();
                let _ = scope.spawn(async move {
                    started.fetch_add(1, Ordering::Release);
                    pending::<()>().await;
                });
            }
            wait_started(&started, n).await;
            scope.cancel("bench");
        })
        .await
        .expect("scope failed");
    });
}

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn cancel_fanout_tokens(rt: (Runtime, usize)) {
    let n = rt.1;
    run(&rt, async {
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
        parent.cancel();
        while let Some(result) = set.join_next().await {
            result.expect("task failed");
        }
    });
}

// ---------------------------------------------------------------------------
// supervisor_spawn: n dynamic children that finish at once, not joined one
// by one, against a `TaskTracker`.

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn supervisor_spawn_tethered(rt: (Runtime, usize)) {
    let n = rt.1;
    run(&rt, async {
        let finished = Finished::new(n);
        Supervisor::builder()
            .run(async |sv| {
                let all_done = finished.done.notified();
                for _ in 0..n {
                    let finished = finished.clone();
                    let _ = sv.spawn("job", async move { finished.one() });
                }
                all_done.await;
            })
            .await
            .expect("supervisor failed");
    });
}

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn supervisor_spawn_tracker(rt: (Runtime, usize)) {
    let n = rt.1;
    run(&rt, async {
        let finished = Finished::new(n);
        let tracker = TaskTracker::new();
        let all_done = finished.done.notified();
        for _ in 0..n {
            let finished = finished.clone();
            tracker.spawn(async move { finished.one() });
        }
        all_done.await;
        tracker.close();
        tracker.wait().await;
    });
}

// ---------------------------------------------------------------------------
// periodic_tick: n ticks of a schedule whose runs do nothing, on the paused
// clock.

const TICK_PERIOD: Duration = Duration::from_millis(1);

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = paused_runtime)]
fn periodic_tick_tethered(rt: (Runtime, usize)) {
    let ticks = rt.1;
    run(&rt, async {
        let count = Arc::new(TickCount::default());
        let periodic = Periodic::every(TICK_PERIOD).overlap(Overlap::Skip);
        Scope::run(async |scope| {
            let body = {
                let count = count.clone();
                move || tick_run(count.clone(), ticks)
            };
            let schedule = scope.spawn(periodic.run(body));
            count.done.notified().await;
            schedule.stop("done");
            schedule.join().await
        })
        .await
        .expect("scope failed")
        .unwrap()
        .expect("schedule failed");
    });
}

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = paused_runtime)]
fn periodic_tick_interval(rt: (Runtime, usize)) {
    let ticks = rt.1;
    run(&rt, async {
        let count = Arc::new(TickCount::default());
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
    });
}

// ---------------------------------------------------------------------------
// local_spawn_join: n local children, every handle joined, against a
// `FuturesUnordered` over the same futures.

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn local_spawn_join_tethered(rt: (Runtime, usize)) -> usize {
    let n = rt.1;
    black_box(run(&rt, async {
        Scope::run_local(|scope| {
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
        .expect("scope failed")
    }))
}

#[library_benchmark]
#[benches::ops(args = [SMALL, LARGE], setup = runtime)]
fn local_spawn_join_unordered(rt: (Runtime, usize)) -> usize {
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let n = rt.1;
    black_box(run(&rt, async {
        let mut set: FuturesUnordered<_> = (0..n).map(|i| async move { i }).collect();
        let mut sum = 0usize;
        while let Some(i) = set.next().await {
            sum += i;
        }
        sum
    }))
}

library_benchmark_group!(
    name = scenarios;
    benchmarks =
        spawn_join_tethered,
        spawn_join_joinset,
        spawn_join_raw_tokio,
        cancel_fanout_tethered,
        cancel_fanout_tokens,
        supervisor_spawn_tethered,
        supervisor_spawn_tracker,
        periodic_tick_tethered,
        periodic_tick_interval,
        local_spawn_join_tethered,
        local_spawn_join_unordered
);

/// gungraun's harness, in a module of its own so that `main` below can print
/// the per-operation lines once it has run.
mod harness {
    use super::*;

    gungraun::main!(
        // Both tools count the whole process: what the runtime's creation,
        // its teardown and the harness cost cancels out in the difference
        // of the two sizes. Counting only while the benchmark's function
        // runs left out work that the same code did in some builds and not
        // in others (callgrind's collection is switched on the function's
        // entry and exit, and the ended children's registry sweeps fell
        // outside it in one build, ~430 instructions a child); and DHAT
        // keeps only a few frames of each allocation's stack, so an
        // allocation deep in a task was left out.
        config = LibraryBenchmarkConfig::default()
            .tool(Callgrind::default().entry_point(EntryPoint::None))
            .tool(Dhat::default().entry_point(EntryPoint::None));
        library_benchmark_groups = scenarios
    );

    pub(super) fn run() {
        main();
    }
}

fn main() {
    // gungraun runs this binary again, under Valgrind, for each benchmark
    // (`--gungraun-run …`): then only the harness has something to do.
    let under_valgrind = std::env::args().nth(1).as_deref() == Some("--gungraun-run");
    harness::run();
    if !under_valgrind {
        print_per_op();
    }
}

// ---------------------------------------------------------------------------
// The per-operation lines, from the files callgrind and DHAT left in
// gungraun's output directory.

/// What one side costs per operation.
#[derive(Debug, Clone, Copy)]
struct PerOp {
    instructions: f64,
    blocks: f64,
    bytes: f64,
}

fn print_per_op() {
    let dir = output_dir();
    let ops = (LARGE - SMALL) as f64;
    for (scenario, tethered, baseline, baseline_name) in SCENARIOS {
        let (Some(t), Some(b)) = (per_op(&dir, tethered, ops), per_op(&dir, baseline, ops)) else {
            // Filtered out on the command line, or not run.
            continue;
        };
        println!(
            "instructions scenario={scenario} tethered={:.0} baseline={baseline_name} \
             baseline_instructions={:.0} ratio={:.3}",
            t.instructions,
            b.instructions,
            t.instructions / b.instructions
        );
        println!(
            "allocations scenario={scenario} tethered={:.2} baseline={:.2} tethered_bytes={:.0} \
             baseline_bytes={:.0}",
            t.blocks, b.blocks, t.bytes, b.bytes
        );
    }
}

/// Where gungraun keeps this benchmark's files:
/// `<target>/gungraun/<package>/<bench>/<module of main!>/<group>/`.
fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let home = std::env::var_os("GUNGRAUN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("gungraun"));
    home.join(env!("CARGO_PKG_NAME"))
        .join("instructions")
        .join("harness")
        .join("scenarios")
}

/// One side's cost per operation: its `LARGE` run minus its `SMALL` run.
fn per_op(dir: &Path, function: &str, ops: f64) -> Option<PerOp> {
    let small = side(dir, function, 0)?;
    let large = side(dir, function, 1)?;
    Some(PerOp {
        instructions: (large.instructions - small.instructions) / ops,
        blocks: (large.blocks - small.blocks) / ops,
        bytes: (large.bytes - small.bytes) / ops,
    })
}

/// The totals of one run of `function` (`index` 0: `SMALL`, 1: `LARGE`).
fn side(dir: &Path, function: &str, index: usize) -> Option<PerOp> {
    let run = dir.join(format!("{function}.ops_{index}"));
    let files: Vec<PathBuf> = std::fs::read_dir(&run)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    let named = |prefix: &str| {
        files.iter().find(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // The current run's file, not the `.old` one gungraun keeps.
            name.starts_with(prefix) && name.ends_with(".out")
        })
    };
    let instructions = callgrind_total(named("callgrind.")?)?;
    let (blocks, bytes) = dhat_totals(named("dhat.")?)?;
    Some(PerOp {
        instructions,
        blocks,
        bytes,
    })
}

/// The instructions in a callgrind output file (its `summary:` or
/// `totals:` line, whose first event is `Ir`).
fn callgrind_total(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .find_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
}

/// The blocks and bytes allocated in a DHAT output file: the sums of its
/// allocation points' `tb` and `tbk`.
fn dhat_totals(path: &Path) -> Option<(f64, f64)> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let points = json.get("pps")?.as_array()?;
    let sum = |key: &str| -> f64 {
        points
            .iter()
            .filter_map(|point| point.get(key)?.as_f64())
            .sum()
    };
    Some((sum("tbk"), sum("tb")))
}
