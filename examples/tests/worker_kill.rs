//! The `worker` binary signalled at pseudo-random moments under load.
//!
//! * SIGTERM, 20 times on one queue: every run exits 0 with `lost=0`, and
//!   leaves no job `taken`, none done twice, the lock row deleted.
//! * SIGKILL, 10 times on one queue, then a run with `--exit-when-empty`:
//!   the stale lock row and leases of each killed process expire (short,
//!   with the hidden `--lease`), the next run takes over, and in the end
//!   every job is done exactly once, and none ran (was taken) more than
//!   twice. Each kill lands once the run has finished the jobs the previous
//!   kill interrupted (which it takes first), at a random moment after.
//!
//! The moments come from a seeded generator (splitmix64), so a run of the
//! test is reproducible as far as the delays go; what is asserted holds
//! whatever moment the signal lands on.
#![cfg(unix)]

use std::io::BufReader;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStderr};
use std::time::{Duration, Instant};

use tethered_examples::worker::Summary;

mod common;

use common::{SplitMix64, TempDb, count, enqueue, signal, spawn_run};

/// Jobs run at once.
const CONCURRENCY: i64 = 16;

/// A started `worker run`, and how it got there.
struct Started {
    child: Child,
    stderr: BufReader<ChildStderr>,
    /// How many earlier tries were refused because the lock was held.
    refusals: u32,
    /// How long it took from the first try to the ready line.
    waited: Duration,
}

/// Starts `worker run --db … extra…` and waits for its ready line. A try
/// refused because the lock is held (exit 3; the holder a killed process
/// whose row has not expired yet) is repeated, every 50 ms, for at most
/// `limit`. `dead_pid`, if given, is the only holder a refusal may name.
fn start(db: &TempDb, extra: &[&str], limit: Duration, dead_pid: Option<u32>) -> Started {
    let begun = Instant::now();
    let mut refusals = 0;
    loop {
        let (mut child, stderr, line) = spawn_run(db, extra);
        if line.contains("running on") {
            return Started {
                child,
                stderr,
                refusals,
                waited: begun.elapsed(),
            };
        }
        let status = child.wait().expect("wait for a refused worker");
        assert_eq!(status.code(), Some(3), "the worker did not start: {line:?}");
        assert!(line.contains("locked by `worker-"), "{line:?}");
        if let Some(pid) = dead_pid {
            assert!(
                line.contains(&format!("(pid {pid})")),
                "refused by someone else than the killed worker {pid}: {line:?}"
            );
        }
        refusals += 1;
        assert!(
            begun.elapsed() < limit,
            "the lock was still held after {:?} ({refusals} tries): {line:?}",
            begun.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the worker, checks it exited 0, returns its summary.
fn finish(started: Started) -> Summary {
    let Started { child, stderr, .. } = started;
    common::finish(child, stderr)
}

#[test]
fn sigterm_at_20_random_moments_leaves_the_queue_clean() {
    let db = TempDb::new("term");
    let path = db.path();
    enqueue(&db, 2000);
    let mut rng = SplitMix64(0x7E57_0001_5167_7E41);
    let mut runs_that_returned = 0;
    let mut returned_total = 0;
    for run in 0..20 {
        // Keep the queue loaded: a run never drains it.
        if count(&path, "SELECT count(*) FROM jobs WHERE state = 'queued'") < 1500 {
            enqueue(&db, 2000);
        }
        // Grace 0 ms cancels the jobs in flight at once (they are returned);
        // 20 ms cancels some; 2 s lets them all finish.
        let grace = ["0ms", "20ms", "2s"][usize::try_from(rng.below(3)).unwrap()];
        let delay = Duration::from_millis(rng.below(301));
        let done_before = count(&path, "SELECT count(*) FROM jobs WHERE state = 'done'");
        let attempts_before = count(&path, "SELECT sum(attempts) FROM jobs");

        let started = start(
            &db,
            &[
                "--concurrency",
                &CONCURRENCY.to_string(),
                "--work-ms",
                "10",
                "--grace",
                grace,
            ],
            Duration::from_secs(5),
            None,
        );
        // The previous run deleted its lock row: no wait.
        assert_eq!(started.refusals, 0, "run {run}: the lock row was left");
        std::thread::sleep(delay);
        signal(&started.child, "-TERM");
        let summary = finish(started);
        println!("run {run}: grace {grace}, SIGTERM after {delay:?}: {summary}");

        assert_eq!(summary.lost, 0, "run {run}: {summary:?}");
        assert_eq!(
            summary.taken,
            summary.done + summary.returned,
            "run {run}: {summary:?}"
        );
        if summary.returned > 0 {
            runs_that_returned += 1;
            returned_total += summary.returned;
        }
        for (what, sql) in [
            ("taken", "SELECT count(*) FROM jobs WHERE state = 'taken'"),
            (
                "done more than once",
                "SELECT count(*) FROM jobs WHERE done_count > 1",
            ),
            (
                "neither done nor queued",
                "SELECT count(*) FROM jobs WHERE state NOT IN ('done', 'queued')",
            ),
            (
                "done without done_count 1",
                "SELECT count(*) FROM jobs WHERE (state = 'done') != (done_count = 1)",
            ),
            ("lock rows", "SELECT count(*) FROM instance_lock"),
        ] {
            assert_eq!(count(&path, sql), 0, "run {run}: jobs {what}");
        }
        // The database agrees with the summary: what it finished is done,
        // and every take counted one attempt.
        let done_after = count(&path, "SELECT count(*) FROM jobs WHERE state = 'done'");
        let attempts_after = count(&path, "SELECT sum(attempts) FROM jobs");
        assert_eq!(
            u64::try_from(done_after - done_before).unwrap(),
            summary.done,
            "run {run}"
        );
        assert_eq!(
            u64::try_from(attempts_after - attempts_before).unwrap(),
            summary.taken,
            "run {run}"
        );
    }
    println!("{runs_that_returned} of 20 runs returned jobs ({returned_total} in all)");
}

#[test]
fn sigkill_at_10_random_moments_then_a_run_finishes_every_job_once() {
    const JOBS: i64 = 2000;
    const KILLS: i64 = 10;
    let db = TempDb::new("kill");
    let path = db.path();
    enqueue(&db, u32::try_from(JOBS).unwrap());
    // A 600 ms lease, renewed every 150 ms; the lock row expires 600 ms +
    // 2 × 150 ms after its last renewal: a restart after a SIGKILL waits
    // under a second, and finds the dead worker's leases expired.
    let args = [
        "--concurrency",
        &CONCURRENCY.to_string(),
        "--work-ms",
        "10",
        "--grace",
        "100ms",
        "--lease",
        "600ms",
    ];
    let mut rng = SplitMix64(0x7E57_0002_0B1E_55ED);
    let mut dead_pid = None;
    let mut longest_wait = Duration::ZERO;
    for run in 0..KILLS {
        let delay = Duration::from_millis(rng.below(301));
        let started = start(&db, &args, Duration::from_secs(5), dead_pid);
        longest_wait = longest_wait.max(started.waited);
        println!(
            "run {run}: started after {:?} ({} refusals), SIGKILL after {delay:?}",
            started.waited, started.refusals
        );
        // Under load means once the run is working through the queue: the
        // jobs the last kill interrupted, which this run takes first, are
        // done by then (within a few ms), so a job is caught by one kill at
        // most.
        wait_until_reruns_are_done(&path, run, dead_pid);
        std::thread::sleep(delay);
        let Started { mut child, .. } = started;
        signal(&child, "-KILL");
        let status = child.wait().expect("wait for the killed worker");
        assert_eq!(status.signal(), Some(9), "run {run}: {status}");
        dead_pid = Some(child.id());
        // A killed worker may leave jobs taken (their leases expire), but
        // never a job finished twice.
        assert_eq!(
            count(&path, "SELECT count(*) FROM jobs WHERE done_count > 1"),
            0,
            "run {run}"
        );
    }
    let left_taken = count(&path, "SELECT count(*) FROM jobs WHERE state = 'taken'");

    let started = start(
        &db,
        &[&args[..], &["--exit-when-empty"]].concat(),
        Duration::from_secs(5),
        dead_pid,
    );
    longest_wait = longest_wait.max(started.waited);
    let last = finish(started);
    println!("last run: {last}");
    assert_eq!(last.lost, 0, "{last:?}");
    assert_eq!(last.returned, 0, "{last:?}");

    assert_eq!(
        count(&path, "SELECT count(*) FROM jobs WHERE state = 'done'"),
        JOBS
    );
    assert_eq!(count(&path, "SELECT count(*) FROM instance_lock"), 0);
    // What is asserted, and why. `done_count` counts the times a job was
    // marked done, `attempts` the times it was taken. Only one worker runs
    // at a time (the lock), and a restart takes the lock only once the dead
    // worker's leases have expired, so no two workers ever hold a job at
    // once: every job is marked done exactly once. A job *ran* (was taken)
    // twice when a SIGKILL caught it in flight; never three times, since
    // each kill comes once the jobs the previous one interrupted are done.
    assert_eq!(
        count(&path, "SELECT count(*) FROM jobs WHERE done_count != 1"),
        0,
        "jobs not done exactly once"
    );
    let extra = count(&path, "SELECT sum(attempts) - count(*) FROM jobs");
    let rerun = count(&path, "SELECT count(*) FROM jobs WHERE attempts > 1");
    let max_attempts = count(&path, "SELECT max(attempts) FROM jobs");
    let min_attempts = count(&path, "SELECT min(attempts) FROM jobs");
    println!(
        "left taken by the last kill: {left_taken}; jobs re-run: {rerun} ({extra} extra takes); \
         max attempts {max_attempts}; longest wait for the lock {longest_wait:?}"
    );
    assert_eq!(min_attempts, 1);
    assert!(extra <= KILLS * CONCURRENCY, "{extra} extra takes");
    assert!(max_attempts <= 2, "a job ran {max_attempts} times");
}

/// Waits until the jobs the previous kill interrupted (left `taken` by the
/// dead worker `dead_pid`) have been taken again and finished by the run
/// now going.
fn wait_until_reruns_are_done(path: &std::path::Path, run: i64, dead_pid: Option<u32>) {
    let Some(dead_pid) = dead_pid else { return };
    let pending = format!(
        "SELECT count(*) FROM jobs WHERE state = 'taken' \
         AND (owner LIKE 'worker-{dead_pid}-%' OR attempts > 1)"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(path, &pending) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "run {run}: the interrupted jobs were not finished within 10 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
