//! The `worker` binary on PostgreSQL: several workers share one queue,
//! and a job whose lease is taken from its worker is cancelled with a
//! reason that says so, and writes nothing. A throwaway cluster of this
//! test's own, or `TETHERED_PG_URL`; skipped without server binaries
//! unless `TETHERED_PG_REQUIRED=1`.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{WORKER, connect, runtime, signal};
use tethered_examples::worker::Summary;
use tethered_examples::worker::pg_cluster::PgServer;

fn worker(args: &[&str]) -> std::process::Output {
    Command::new(WORKER)
        .args(args)
        .output()
        .expect("run worker")
}

/// Waits until at least `at_least` jobs are in `state`, for at most
/// `within` (then fails, saying `what`).
async fn wait_for(url: &str, state: &str, at_least: i64, within: Duration, what: &str) {
    let started = Instant::now();
    let sql = format!("SELECT count(*) FROM tethered_worker.jobs WHERE state = '{state}'");
    while count(url, &sql).await < at_least {
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn count(url: &str, sql: &str) -> i64 {
    connect(url).await.query_one(sql, &[]).await.unwrap().get(0)
}

#[test]
fn the_worker_on_postgres_keeps_its_promises() {
    let Some(server) = PgServer::for_tests() else {
        return;
    };
    let runtime = runtime();
    runtime.block_on(async {
        three_workers_finish_the_queue_each_job_once(&server).await;
        a_job_whose_lease_is_taken_is_cancelled_and_writes_nothing(&server).await;
        a_killed_workers_jobs_are_rescued_once_their_leases_expire(&server).await;
        an_idle_worker_hears_a_new_job_at_once(&server).await;
        a_job_is_cancelled_from_anywhere_with_who_asked(&server).await;
        a_scheduled_job_is_enqueued_once_per_period_by_the_leader(&server).await;
        a_failing_job_is_retried_with_backoff_then_failed_with_its_error(&server).await;
        // Last: it stops and starts the server.
        losing_the_database_cancels_the_jobs_in_flight_and_nothing_is_done_twice(&server).await;
    });
}

async fn three_workers_finish_the_queue_each_job_once(server: &PgServer) {
    let url = server.create_database("fleet").await.unwrap();
    let out = worker(&["enqueue", "300", "--db", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enqueued 300 jobs (300 in total)"));

    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(WORKER)
                .args(["run", "--db", &url, "--concurrency", "4", "--work-ms", "5"])
                .arg("--exit-when-empty")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start worker")
        })
        .collect();
    let mut done = 0;
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = Summary::parse(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|| panic!("no summary in {stdout:?}: {said}"));
        assert_eq!(summary.lost, 0, "{said}");
        done += summary.done;
    }
    assert_eq!(done, 300);
    let jobs = "tethered_worker.jobs";
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {jobs} WHERE state = 'done'")
        )
        .await,
        300
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {jobs} WHERE done_count > 1")
        )
        .await,
        0
    );
}

async fn a_job_whose_lease_is_taken_is_cancelled_and_writes_nothing(server: &PgServer) {
    let url = server.create_database("stolen").await.unwrap();
    assert!(worker(&["enqueue", "1", "--db", &url]).status.success());
    // One slow job, with a short lease renewed every 100 ms.
    let (child, mut stderr) = start(
        &url,
        &[
            "--concurrency",
            "1",
            "--work-ms",
            "60000",
            "--lease",
            "400ms",
        ],
    );
    let jobs = "tethered_worker.jobs";
    wait_for(
        &url,
        "running",
        1,
        Duration::from_secs(10),
        "the job never started",
    )
    .await;
    // Another worker takes the job from under it (as a rescue and a new
    // claim would).
    let client = connect(&url).await;
    client
        .batch_execute(&format!(
            "UPDATE {jobs} SET owner = 'worker-thief', claim = claim + 1 WHERE state = 'running'"
        ))
        .await
        .unwrap();
    let said = read_until(&mut stderr, "lease lost");
    assert!(
        said.contains("job 1: lease lost: job 1 now held by worker-thief (claim 2)"),
        "{said}"
    );
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let summary = Summary::parse(stdout.lines().last().unwrap_or_default()).unwrap();
    // Taken, not done, not returned: taken over (it was no longer ours).
    assert_eq!(
        summary,
        Summary {
            taken: 1,
            done: 0,
            returned: 0,
            taken_over: 1,
            lost: 0,
            ..Default::default()
        }
    );
    // The thief still holds it: the cancelled job wrote nothing.
    let row = client
        .query_one(&format!("SELECT owner, state, done_count FROM {jobs}"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), Some("worker-thief"));
    assert_eq!(row.get::<_, &str>(1), "running");
    assert_eq!(row.get::<_, i32>(2), 0);
}

async fn a_killed_workers_jobs_are_rescued_once_their_leases_expire(server: &PgServer) {
    let url = server.create_database("rescue").await.unwrap();
    assert!(worker(&["enqueue", "20", "--db", &url]).status.success());
    let jobs = "tethered_worker.jobs";
    // Four slow jobs in flight, then SIGKILL: no shutdown, no cleanup.
    let mut victim = Command::new(WORKER)
        .args([
            "run",
            "--db",
            &url,
            "--concurrency",
            "4",
            "--work-ms",
            "60000",
        ])
        .args(["--lease", "300ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start worker");
    wait_for(
        &url,
        "running",
        4,
        Duration::from_secs(10),
        "the jobs never started",
    )
    .await;
    signal(&victim, "-KILL");
    victim.wait().unwrap();

    // The next worker's rescuer takes them back once their leases expire,
    // and it finishes the queue.
    let out = Command::new(WORKER)
        .args(["run", "--db", &url, "--work-ms", "5", "--lease", "300ms"])
        .arg("--exit-when-empty")
        .output()
        .expect("run worker");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("rescued 4 jobs whose lease had expired"),
        "{said}"
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {jobs} WHERE state = 'done'")
        )
        .await,
        20
    );
    // Each rescued job used up one attempt; the others none.
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {jobs} WHERE attempts = 1")
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {jobs} WHERE done_count > 1")
        )
        .await,
        0
    );
}

/// Starts `worker run --db url extra…` and waits until it says it runs.
fn start(url: &str, extra: &[&str]) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(WORKER)
        .args(["run", "--db", url])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start worker");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("running on") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the worker did not start"
        );
    }
    (child, stderr)
}

/// Reads `stderr` until a line contains `needle`; returns what it read.
fn read_until(stderr: &mut BufReader<std::process::ChildStderr>, needle: &str) -> String {
    let mut said = String::new();
    while !said.contains(needle) {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no {needle:?} in:\n{said}"
        );
        said.push_str(&line);
    }
    said
}

async fn an_idle_worker_hears_a_new_job_at_once(server: &PgServer) {
    let url = server.create_database("listen").await.unwrap();
    assert!(worker(&["enqueue", "0", "--db", &url]).status.success());
    // Polling every 60 s: only the NOTIFY of the enqueue can wake it soon.
    let (child, _stderr) = start(&url, &["--work-ms", "1", "--poll", "60s"]);
    // Give its listener a moment to subscribe (it starts with the worker).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let enqueued = Instant::now();
    assert!(worker(&["enqueue", "1", "--db", &url]).status.success());
    wait_for(
        &url,
        "done",
        1,
        Duration::from_secs(20),
        "the job waited for the poll: the NOTIFY did not wake the worker",
    )
    .await;
    eprintln!(
        "an idle worker ran a new job {:?} after its enqueue",
        enqueued.elapsed()
    );
    signal(&child, "-TERM");
    assert!(child.wait_with_output().unwrap().status.success());
}

async fn a_job_is_cancelled_from_anywhere_with_who_asked(server: &PgServer) {
    let url = server.create_database("cancel").await.unwrap();
    assert!(worker(&["enqueue", "1", "--db", &url]).status.success());
    let (child, mut stderr) = start(&url, &["--concurrency", "1", "--work-ms", "60000"]);
    let jobs = "tethered_worker.jobs";
    wait_for(
        &url,
        "running",
        1,
        Duration::from_secs(10),
        "the job never started",
    )
    .await;
    // Another process, as an operator would, on another host.
    let out = worker(&["cancel", "1", "--reason", "customer asked", "--db", &url]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with("job 1 is running: asked worker-"),
        "{said}"
    );
    let said = read_until(&mut stderr, "job 1: cancelled:");
    assert!(
        said.contains("job 1: cancelled: customer asked (asked by "),
        "{said}"
    );
    let client = connect(&url).await;
    let row = client
        .query_one(
            &format!("SELECT state, cancel_reason, owner FROM {jobs}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "cancelled");
    assert!(
        row.get::<_, &str>(1)
            .starts_with("customer asked (asked by ")
    );
    assert_eq!(row.get::<_, Option<&str>>(2), None);

    // A queued job (due in an hour, so that the worker leaves it) is
    // cancelled at once; an ended one is left as it is.
    client
        .batch_execute(&format!(
            "INSERT INTO {jobs} (payload, run_after) VALUES ('later', now() + interval '1 hour')"
        ))
        .await
        .unwrap();
    let out = worker(&["cancel", "2", "--reason", "not needed", "--db", &url]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "job 2 was queued: cancelled"
    );
    let out = worker(&["cancel", "1", "--reason", "again", "--db", &url]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "job 1 had ended: it is cancelled"
    );
    let out = worker(&["cancel", "9", "--reason", "?", "--db", &url]);
    assert_eq!(out.status.code(), Some(2));

    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(
        stdout.lines().last(),
        Some("taken=1 done=0 returned=0 cancelled=1 lost=0")
    );
}

async fn a_scheduled_job_is_enqueued_once_per_period_by_the_leader(server: &PgServer) {
    let url = server.create_database("schedule").await.unwrap();
    assert!(worker(&["enqueue", "0", "--db", &url]).status.success());
    // Three workers, each asked to enqueue a job every 500 ms: only the
    // leader does, once a period.
    let fleet: Vec<_> = (0..3)
        .map(|_| {
            start(
                &url,
                &[
                    "--enqueue-every",
                    "500ms",
                    "--work-ms",
                    "1",
                    "--lease",
                    "400ms",
                ],
            )
        })
        .collect();
    wait_for(
        &url,
        "done",
        4,
        Duration::from_secs(20),
        "no scheduled jobs ran",
    )
    .await;
    for (child, _) in &fleet {
        signal(child, "-TERM");
    }
    for (child, _) in fleet {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT payload),
                    (SELECT count(*) FROM tethered_worker.schedule)
             FROM tethered_worker.jobs WHERE payload LIKE 'scheduled %'",
            &[],
        )
        .await
        .unwrap();
    let (jobs, periods, slots): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(jobs >= 4, "{jobs}");
    assert_eq!(
        (jobs, jobs),
        (periods, slots),
        "a period was enqueued twice"
    );
}

async fn a_failing_job_is_retried_with_backoff_then_failed_with_its_error(server: &PgServer) {
    let url = server.create_database("failing").await.unwrap();
    assert!(worker(&["enqueue", "4", "--db", &url]).status.success());
    // Jobs 2 and 4 fail at every attempt (5 by default): retried four
    // times each, after 20, 40, 80 and 160 ms (jittered down to half).
    let started = Instant::now();
    let out = worker(&[
        "run",
        "--db",
        &url,
        "--work-ms",
        "1",
        "--poll",
        "10ms",
        "--fail-every",
        "2",
        "--retry-base",
        "20ms",
        "--exit-when-empty",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = Summary::parse(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    assert_eq!(
        (summary.taken, summary.done, summary.retried, summary.failed),
        (12, 2, 8, 2),
        "{said}"
    );
    assert_eq!(summary.lost, 0);
    assert!(
        said.contains("job 2: failed on purpose (--fail-every 2) at attempt 1; retried in"),
        "{said}"
    );
    assert!(
        said.contains("job 4: failed on purpose (--fail-every 2) at attempt 5, its last: failed"),
        "{said}"
    );
    // The backoff was waited: at least half of 20 + 40 + 80 + 160 ms.
    assert!(started.elapsed() >= Duration::from_millis(150));
    let client = connect(&url).await;
    let rows = client
        .query(
            "SELECT id, state, attempts, last_error FROM tethered_worker.jobs ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let jobs: Vec<(i64, String, i32, Option<String>)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    let last = |n| Some(format!("failed on purpose (--fail-every 2) at attempt {n}"));
    assert_eq!(
        jobs,
        vec![
            (1, "done".into(), 0, None),
            (2, "failed".into(), 5, last(5)),
            (3, "done".into(), 0, None),
            (4, "failed".into(), 5, last(5)),
        ]
    );
    // On SQLite, the option is refused rather than ignored.
    let dir = std::env::temp_dir().join(format!("tethered-fail-every-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = dir.join("queue.sqlite3");
    let sqlite = sqlite.to_str().unwrap();
    let out = worker(&["run", "--db", sqlite, "--fail-every", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--fail-every needs the queue on PostgreSQL"),
        "{said}"
    );
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn losing_the_database_cancels_the_jobs_in_flight_and_nothing_is_done_twice(
    server: &PgServer,
) {
    let PgServer::Own(cluster) = server else {
        eprintln!("skipped: stopping the database needs a cluster of the test's own");
        return;
    };
    let url = server.create_database("unreachable").await.unwrap();
    assert!(worker(&["enqueue", "1", "--db", &url]).status.success());
    let (child, mut stderr) = start(
        &url,
        &["--work-ms", "3000", "--lease", "600ms", "--poll", "100ms"],
    );
    wait_for(&url, "running", 1, Duration::from_secs(20), "never taken").await;
    cluster.stop().unwrap();
    // The lease could not be renewed for as long as it lasts: the job is
    // cancelled, with that as its reason, long before its 3 s are up.
    let said = read_until(&mut stderr, "database unreachable");
    assert!(
        said.contains("job 1: database unreachable: the lease could not be renewed for 600ms"),
        "{said}"
    );
    cluster.start().unwrap();
    // Back: the job is taken again (rescued once its lease has expired,
    // or returned by the worker) and done, once.
    wait_for(&url, "done", 1, Duration::from_secs(30), "never done").await;
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = Summary::parse(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    assert_eq!((summary.taken, summary.done, summary.lost), (2, 1, 0));
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM tethered_worker.jobs WHERE done_count = 1 AND state = 'done'"
        )
        .await,
        1
    );
}
