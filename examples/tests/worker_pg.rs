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

use common::{WORKER, signal};
use tethered_examples::worker::Summary;
use tethered_examples::worker::pg_cluster::PgServer;

fn worker(args: &[&str]) -> std::process::Output {
    Command::new(WORKER)
        .args(args)
        .output()
        .expect("run worker")
}

async fn count(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[test]
fn workers_share_a_postgres_queue_and_a_lost_lease_cancels_its_job() {
    let Some(server) = PgServer::for_tests() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        three_workers_finish_the_queue_each_job_once(&server).await;
        a_job_whose_lease_is_taken_is_cancelled_and_writes_nothing(&server).await;
        a_killed_workers_jobs_are_rescued_once_their_leases_expire(&server).await;
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
    let mut child = Command::new(WORKER)
        .args([
            "run",
            "--db",
            &url,
            "--concurrency",
            "1",
            "--work-ms",
            "60000",
        ])
        .args(["--lease", "400ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start worker");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let jobs = "tethered_worker.jobs";
    let started = Instant::now();
    while count(
        &url,
        &format!("SELECT count(*) FROM {jobs} WHERE state = 'running'"),
    )
    .await
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another worker takes the job from under it (as a rescue and a new
    // claim would).
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "UPDATE {jobs} SET owner = 'worker-thief', claim = claim + 1 WHERE state = 'running'"
        ))
        .await
        .unwrap();
    let mut said = String::new();
    while !said.contains("lease lost") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{said}");
        said.push_str(&line);
    }
    assert!(
        said.contains("job 1: lease lost: job 1 now held by worker-thief"),
        "{said}"
    );
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let summary = Summary::parse(stdout.lines().last().unwrap_or_default()).unwrap();
    // Taken, not done, not returned (it was no longer ours), not lost.
    assert_eq!(
        summary,
        Summary {
            taken: 1,
            done: 0,
            returned: 0,
            lost: 0
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
    let started = Instant::now();
    while count(
        &url,
        &format!("SELECT count(*) FROM {jobs} WHERE state = 'running'"),
    )
    .await
        < 4
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the jobs never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
