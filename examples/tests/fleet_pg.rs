//! The fleet test: one PostgreSQL, four processes of the real `worker`
//! binary, a queue of jobs of mixed length (some of which fail at every
//! attempt), one worker paused (SIGSTOP) past its leases and resumed, and,
//! at seeded random moments, a worker SIGKILLed (and a new one started), a
//! worker SIGTERMed (and a new one started), every worker's connections
//! killed from the server (`pg_terminate_backend`), and PostgreSQL itself
//! restarted once. Then
//! the queue is drained, and the history the database kept (triggers the
//! test installs) is checked:
//!
//! * every job is `done` exactly once, but the failing ones, which are
//!   `failed` with their error after their attempts;
//! * every job that ran more than once is explained, by a shutdown that
//!   returned it, a lease that expired or was lost, or a failure retried
//!   (the counts are printed);
//! * no write of a fenced-out owner landed: each job was finished by the
//!   owner of its last claim, under that claim, and the paused worker,
//!   resumed, found its jobs taken over (its writes refused);
//! * a leader term never had two holders, and no term began before the
//!   one before it had expired.
//!
//! A throwaway cluster of this test's own (needed to restart the server),
//! skipped without server binaries unless `TETHERED_PG_REQUIRED=1`.
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SplitMix64, WORKER, connect, runtime, signal};
use tethered_examples::worker::Summary;
use tethered_examples::worker::pg_cluster::PgServer;

const JOBS: u64 = 1500;
/// The workers the chaos picks from; one more is paused and resumed.
const WORKERS: usize = 3;
/// Every `FAIL_EVERY`-th job fails at every attempt.
const FAIL_EVERY: i64 = 97;
/// How long the chaos lasts.
const CHAOS: Duration = Duration::from_secs(6);

/// The history the test keeps: every change of a job's state, and every
/// write to the leader row.
const HISTORY: &str = "
    CREATE TABLE tethered_worker.history (
        seq bigserial PRIMARY KEY,
        job bigint NOT NULL,
        from_state text NOT NULL,
        to_state text NOT NULL,
        owner text,
        claim bigint NOT NULL,
        note text,
        used integer NOT NULL
    );
    CREATE FUNCTION tethered_worker.record_job() RETURNS trigger AS $$
    BEGIN
        IF NEW.state IS DISTINCT FROM OLD.state THEN
            INSERT INTO tethered_worker.history (job, from_state, to_state, owner, claim, note, used)
            VALUES (NEW.id, OLD.state, NEW.state,
                    CASE WHEN NEW.state = 'running' THEN NEW.owner ELSE OLD.owner END,
                    NEW.claim, NEW.last_error, NEW.attempts - OLD.attempts);
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql;
    CREATE TRIGGER record_job AFTER UPDATE ON tethered_worker.jobs
        FOR EACH ROW EXECUTE FUNCTION tethered_worker.record_job();
    CREATE TABLE tethered_worker.terms (
        term bigint NOT NULL,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE FUNCTION tethered_worker.record_term() RETURNS trigger AS $$
    BEGIN
        INSERT INTO tethered_worker.terms (term, holder, expires_at)
        VALUES (NEW.term, NEW.holder, NEW.expires_at);
        RETURN NEW;
    END $$ LANGUAGE plpgsql;
    CREATE TRIGGER record_term AFTER INSERT OR UPDATE ON tethered_worker.leader
        FOR EACH ROW EXECUTE FUNCTION tethered_worker.record_term();
";

/// The summary a worker printed, if it printed one (a SIGKILLed one does
/// not); waits for it to exit.
fn summary_of(worker: Child) -> Option<Summary> {
    let out = worker.wait_with_output().expect("wait for a worker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Summary::parse(stdout.lines().last().unwrap_or_default())
}

fn start_worker(url: &str, extra: &[&str]) -> Child {
    Command::new(WORKER)
        .args(["run", "--db", url, "--concurrency", "4", "--lease", "600ms"])
        .args([
            "--poll",
            "200ms",
            "--work-ms",
            "10",
            "--slow-every",
            "7",
            "--slow-ms",
            "400",
            "--fail-every",
            &FAIL_EVERY.to_string(),
            "--retry-base",
            "20ms",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start worker")
}

#[test]
fn a_fleet_under_kills_and_restarts_loses_no_job_and_lets_no_fenced_write_land() {
    let Some(server) = PgServer::for_tests() else {
        return;
    };
    let runtime = runtime();
    runtime.block_on(fleet(&server));
}

async fn fleet(server: &PgServer) {
    let url = server.create_database("fleet").await.unwrap();
    // The schema first, then the history's triggers, then the jobs.
    let out = Command::new(WORKER)
        .args(["enqueue", "0", "--db", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    connect(&url).await.batch_execute(HISTORY).await.unwrap();
    let out = Command::new(WORKER)
        .args(["enqueue", &JOBS.to_string(), "--db", &url])
        .output()
        .unwrap();
    assert!(out.status.success());

    let mut workers: Vec<Child> = (0..WORKERS).map(|_| start_worker(&url, &[])).collect();
    // Paused 1 s in, for 2 s (its leases last 600 ms): by the time it
    // resumes, its jobs have been rescued, and taken by others.
    let paused = start_worker(&url, &[]);
    let pid = paused.id().to_string();
    let pause = tokio::spawn(async move {
        let kill = |signal: &str| {
            let status = Command::new("kill").args([signal, &pid]).status().unwrap();
            assert!(status.success());
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        kill("-STOP");
        tokio::time::sleep(Duration::from_secs(2)).await;
        kill("-CONT");
    });
    let mut rng = SplitMix64(0xF1EE_7000_0000_0001);
    let (mut kills, mut terms, mut cuts, mut restarted) = (0, 0, 0, false);
    let mut summaries: Vec<Summary> = Vec::new();
    let chaos = Instant::now();
    while chaos.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(500))).await;
        let which = rng.below(WORKERS as u64) as usize;
        match rng.below(4) {
            0 => {
                signal(&workers[which], "-KILL");
                let _ = workers[which].wait();
                workers[which] = start_worker(&url, &[]);
                kills += 1;
            }
            1 => {
                signal(&workers[which], "-TERM");
                let stopped = std::mem::replace(&mut workers[which], start_worker(&url, &[]));
                summaries.extend(summary_of(stopped));
                terms += 1;
            }
            2 => {
                let client = connect(&url).await;
                client
                    .batch_execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE pid <> pg_backend_pid() AND datname = current_database()",
                    )
                    .await
                    .unwrap();
                cuts += 1;
            }
            _ => {
                if let (PgServer::Own(cluster), false) = (server, restarted) {
                    cluster.stop().unwrap();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    cluster.start().unwrap();
                    restarted = true;
                }
            }
        }
    }
    if let (PgServer::Own(cluster), false) = (server, restarted) {
        cluster.stop().unwrap();
        cluster.start().unwrap();
        restarted = true;
    }
    pause.await.unwrap();
    // The fleet stops; two workers drain what is left, rescues included.
    for worker in workers.iter().chain([&paused]) {
        signal(worker, "-TERM");
    }
    for worker in workers {
        summaries.extend(summary_of(worker));
    }
    let resumed = summary_of(paused).expect("the paused worker's summary");
    assert!(
        resumed.taken_over > 0,
        "the paused worker found none of its jobs taken over: {resumed:?}"
    );
    summaries.push(resumed);
    let drains: Vec<Child> = (0..2)
        .map(|_| start_worker(&url, &["--exit-when-empty"]))
        .collect();
    for mut drain in drains {
        let waited = Instant::now();
        loop {
            if let Some(status) = drain.try_wait().unwrap() {
                assert!(status.success(), "a draining worker failed: {status}");
                break;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "the queue never drained"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        summaries.extend(summary_of(drain));
    }
    // Writes the fence refused: each worker counts the jobs it found taken
    // over (its finish or its return matched no row).
    let fenced: u64 = summaries.iter().map(|summary| summary.taken_over).sum();
    assert!(
        summaries.iter().all(|summary| summary.lost == 0),
        "{summaries:?}"
    );
    // Every job a worker took, it accounts for.
    for summary in &summaries {
        let Summary {
            taken,
            done,
            returned,
            retried,
            failed,
            cancelled,
            taken_over,
            lost,
        } = *summary;
        assert_eq!(
            taken,
            done + returned + retried + failed + cancelled + taken_over + lost,
            "{summary:?}"
        );
    }

    let client = connect(&url).await;
    let count = async |sql: &str| -> i64 { client.query_one(sql, &[]).await.unwrap().get(0) };
    let done = count("SELECT count(*) FROM tethered_worker.jobs WHERE state = 'done'").await;
    let failed = count(
        "SELECT count(*) FROM tethered_worker.jobs
         WHERE state = 'failed' AND last_error IS NOT NULL AND attempts >= max_attempts",
    )
    .await;
    assert_eq!(done + failed, JOBS as i64, "jobs lost");
    // The failing jobs, and only they, ended `failed`.
    let failing = JOBS as i64 / FAIL_EVERY;
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM tethered_worker.jobs
             WHERE state = 'failed' AND id % {FAIL_EVERY} = 0"
        ))
        .await,
        failing
    );
    assert_eq!(failed, failing);
    assert_eq!(
        count("SELECT count(*) FROM tethered_worker.jobs WHERE done_count > 1").await,
        0,
        "a job was done twice"
    );

    // Replay the history, job by job.
    let rows = client
        .query(
            "SELECT job, from_state, to_state, owner, claim, note, used
             FROM tethered_worker.history ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let mut last_claim: HashMap<i64, (Option<String>, i64)> = HashMap::new();
    let mut finished: HashMap<i64, u32> = HashMap::new();
    let (mut claims, mut returned, mut rescued, mut cancelled) = (0u64, 0u64, 0u64, 0u64);
    let mut retried = 0u64;
    for row in &rows {
        let job: i64 = row.get(0);
        let (from, to): (&str, &str) = (row.get(1), row.get(2));
        let owner: Option<String> = row.get(3);
        let claim: i64 = row.get(4);
        let note: Option<&str> = row.get(5);
        // Attempts the change used up: a rescue and a failure use one, a
        // return none.
        let used: i32 = row.get(6);
        match (from, to) {
            ("queued", "running") => {
                claims += 1;
                last_claim.insert(job, (owner, claim));
            }
            ("running", "done") => {
                // Finished by the owner of the last claim, under it: a
                // fenced-out owner's finish would show another.
                assert_eq!(
                    last_claim.get(&job),
                    Some(&(owner.clone(), claim)),
                    "job {job} finished by {owner:?} under claim {claim}"
                );
                *finished.entry(job).or_default() += 1;
            }
            ("running", "queued" | "failed")
                if used == 1 && note.is_some_and(|n| n.starts_with("lease expired")) =>
            {
                rescued += 1;
            }
            ("running", "queued" | "failed")
                if used == 1 && note.is_some_and(|n| n.starts_with("failed on purpose")) =>
            {
                // Finished too, in a way: by the owner of its last claim.
                assert_eq!(
                    last_claim.get(&job),
                    Some(&(owner.clone(), claim)),
                    "job {job}'s failure recorded by {owner:?} under claim {claim}"
                );
                if to == "queued" {
                    retried += 1;
                }
            }
            ("running", "queued") if used == 0 => returned += 1,
            ("running", "cancelled") => cancelled += 1,
            other => panic!("job {job}: an unexpected change {other:?}"),
        }
    }
    assert!(finished.values().all(|&n| n == 1), "a job finished twice");
    assert_eq!(finished.len() as i64, done);
    // Every claim past a job's first is explained by a return, a rescue
    // or a retry.
    let reruns = claims - JOBS;
    assert_eq!(
        reruns,
        returned + rescued + retried,
        "claims not explained by returns, rescues or retries"
    );
    assert_eq!(cancelled, 0);

    // The leader terms: one holder each, none begun before the last expired.
    let rows = client
        .query(
            "SELECT term, holder, expires_at, at FROM tethered_worker.terms ORDER BY term, at",
            &[],
        )
        .await
        .unwrap();
    let mut holders: HashMap<i64, String> = HashMap::new();
    let mut ends: HashMap<i64, std::time::SystemTime> = HashMap::new();
    let mut begins: HashMap<i64, std::time::SystemTime> = HashMap::new();
    for row in &rows {
        let (term, holder): (i64, String) = (row.get(0), row.get(1));
        let expires: std::time::SystemTime = row.get(2);
        let at: std::time::SystemTime = row.get(3);
        let first = holders.entry(term).or_insert_with(|| holder.clone());
        assert_eq!(*first, holder, "term {term} had two holders");
        begins.entry(term).or_insert(at);
        let end = ends.entry(term).or_insert(expires);
        *end = (*end).max(expires);
    }
    for (term, began) in &begins {
        if let Some(before) = ends.get(&(term - 1)) {
            assert!(
                began >= before,
                "term {term} began before term {} expired",
                term - 1
            );
        }
    }
    eprintln!(
        "fleet: {JOBS} jobs, {done} done, {failed} failed after their attempts; \
         {kills} SIGKILLs, {terms} SIGTERMs, {cuts} connection kills, a worker paused 2 s, \
         postgres restarted: {restarted}; {reruns} jobs run again: {returned} returned by a \
         shutdown, {rescued} rescued after their lease expired, {retried} retried after a \
         failure; {fenced} writes refused by the \
         fence (counted by the workers that lived to say so); {} leader terms, one holder each",
        holders.len()
    );
}

#[test]
fn the_fleet_demo_plays_out_and_ends_with_nothing_lost() {
    let Some(server) = PgServer::for_tests() else {
        return;
    };
    let runtime = runtime();
    let url = runtime.block_on(server.create_database("demo")).unwrap();
    let out = Command::new(WORKER)
        .args(["demo", "--fleet", "--db", &url])
        .output()
        .expect("run the demo");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "demo: SIGKILL to w1",
        "jobs whose lease had expired",
        "lease lost: job",
        "demo: the queue is drained",
        "done more than once: 0",
        "lost=0",
    ] {
        assert!(said.contains(line), "no {line:?} in:\n{said}");
    }
}
