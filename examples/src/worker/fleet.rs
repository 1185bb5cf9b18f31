//! `worker demo --fleet`: several workers on one PostgreSQL queue, and
//! what goes wrong in a fleet, played out: a worker SIGKILLed (its jobs
//! rescued once their leases expire), a worker paused past its leases (it
//! wakes up to find its jobs taken, and each is cancelled with `lease
//! lost: …`, writing nothing), a job cancelled from another process, and
//! the queue drained, every job done once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use super::Summary;
use super::pg::PgQueue;
use super::pg_cluster::{PgCluster, PgServer};

/// A worker of the demo: its process and its name in the output.
struct Member {
    name: String,
    child: Child,
    relay: tokio::task::JoinHandle<()>,
}

/// Starts `worker run --db url …`, relaying its stderr as `  wN | …`.
fn start(url: &str, name: &str, extra: &[&str]) -> Result<Member, String> {
    let exe = std::env::current_exe().map_err(|error| format!("cannot find myself: {error}"))?;
    let mut child = Command::new(exe)
        .args(["run", "--db", url, "--concurrency", "8", "--lease", "1s"])
        .args(["--work-ms", "40", "--slow-every", "25", "--slow-ms", "3000"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start a worker: {error}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let prefix = format!("  {name} |");
    let relay = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // The metrics lines, once a second per worker, would drown the
            // story; the rest is told.
            if !line.contains("in_flight=") {
                crate::outln!("worker demo", "{prefix} {line}");
            }
        }
    });
    crate::outln!(
        "worker demo",
        "demo: started {name} (pid {})",
        child.id().unwrap_or_default()
    );
    Ok(Member {
        name: name.to_owned(),
        child,
        relay,
    })
}

fn kill(member: &Member, signal: &str) -> Result<(), String> {
    let pid = member.child.id().ok_or("the worker has exited")?;
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .map_err(|error| format!("cannot run kill: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {signal} {pid} failed"))
    }
}

/// Waits for `member` to exit; returns its summary line, parsed.
async fn finish(mut member: Member) -> Result<Option<Summary>, String> {
    let mut stdout = String::new();
    if let Some(mut out) = member.child.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut out, &mut stdout)
            .await
            .map_err(|error| format!("cannot read {}'s output: {error}", member.name))?;
    }
    let status = member
        .child
        .wait()
        .await
        .map_err(|error| format!("cannot wait for {}: {error}", member.name))?;
    let _ = member.relay.await;
    let line = stdout.lines().last().unwrap_or_default().to_owned();
    crate::outln!(
        "worker demo",
        "demo: {} exited with {status}; summary: {line}",
        member.name
    );
    Ok(Summary::parse(&line))
}

async fn sql_count(queue: &PgQueue, sql: &str) -> Result<i64, String> {
    let client = queue.client().await.map_err(|error| error.to_string())?;
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|error| error.to_string())?;
    Ok(row.get(0))
}

/// The demo, on the database at `db`, or on a throwaway cluster.
pub async fn demo(db: Option<String>) -> Result<(), String> {
    let started = Instant::now();
    // Kept alive to the end: the cluster is stopped when it is dropped.
    let mut _cluster: Option<PgServer> = None;
    let url = match db {
        Some(url) => url,
        None => {
            let bin = PgCluster::binaries().ok_or(
                "no PostgreSQL server binaries (initdb, pg_ctl) here: install the server, or \
                 pass --db postgres://… to use one",
            )?;
            let server = PgServer::Own(PgCluster::start_with(&bin)?);
            let url = server.create_database("fleet_demo").await?;
            crate::outln!(
                "worker demo",
                "demo: started a throwaway PostgreSQL cluster"
            );
            _cluster = Some(server);
            url
        }
    };
    let queue = PgQueue::connect(&url, 2)
        .await
        .map_err(|error| error.to_string())?;
    let total = queue
        .enqueue(1500)
        .await
        .map_err(|error| error.to_string())?;
    crate::outln!(
        "worker demo",
        "demo: enqueued 1500 jobs ({total} in the queue); one in 25 takes 3 s"
    );

    let w1 = start(&url, "w1", &[])?;
    let w2 = start(&url, "w2", &[])?;
    let w3 = start(&url, "w3", &[])?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    crate::outln!(
        "worker demo",
        "demo: SIGKILL to w1: its jobs in flight are rescued once their leases (1 s) expire"
    );
    kill(&w1, "-KILL")?;
    let _ = finish(w1).await?;
    let w4 = start(&url, "w4", &[])?;

    crate::outln!(
        "worker demo",
        "demo: SIGSTOP to w2 for 3 s: its leases expire while it is paused"
    );
    kill(&w2, "-STOP")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill(&w2, "-CONT")?;
    crate::outln!(
        "worker demo",
        "demo: SIGCONT to w2: it finds its jobs taken, and cancels them"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A slow job running somewhere, cancelled from this process, as an
    // operator on another host would.
    let running = sql_count(
        &queue,
        "SELECT coalesce(min(id), 0) FROM tethered_worker.jobs
         WHERE state = 'running' AND id % 25 = 0",
    )
    .await?;
    if running > 0 {
        let reason = "demo: customer asked";
        let by = format!(
            "demo@{}",
            super::asker().split('@').nth(1).unwrap_or("here")
        );
        let asked = queue
            .request_cancel(running, &by, reason)
            .await
            .map_err(|error| error.to_string())?;
        crate::outln!(
            "worker demo",
            "demo: worker cancel {running} --reason {reason:?}: {asked:?}"
        );
    }

    // The rest of the queue, then the fleet stops.
    let drain_started = Instant::now();
    while sql_count(
        &queue,
        "SELECT count(*) FROM tethered_worker.jobs WHERE state IN ('queued', 'running')",
    )
    .await?
        > 0
    {
        if drain_started.elapsed() > Duration::from_secs(120) {
            return Err("the queue did not drain in 2 minutes".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crate::outln!(
        "worker demo",
        "demo: the queue is drained; SIGTERM to every worker"
    );
    let mut summaries = Vec::new();
    for member in [w2, w3, w4] {
        kill(&member, "-TERM")?;
        summaries.push(finish(member).await?);
    }

    let done = sql_count(
        &queue,
        "SELECT count(*) FROM tethered_worker.jobs WHERE state = 'done'",
    )
    .await?;
    let cancelled = sql_count(
        &queue,
        "SELECT count(*) FROM tethered_worker.jobs WHERE state = 'cancelled'",
    )
    .await?;
    let twice = sql_count(
        &queue,
        "SELECT count(*) FROM tethered_worker.jobs WHERE done_count > 1",
    )
    .await?;
    let rescued = sql_count(
        &queue,
        "SELECT count(*) FROM tethered_worker.jobs WHERE attempts > 0 AND state = 'done'",
    )
    .await?;
    let lost: u64 = summaries.iter().flatten().map(|summary| summary.lost).sum();
    crate::outln!(
        "worker demo",
        "demo: queue: done={done} cancelled={cancelled}; done more than once: {twice}; \
         done after a rescue: {rescued}; lost={lost}; took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if done + cancelled == 1500 && twice == 0 && lost == 0 && summaries.iter().all(Option::is_some)
    {
        Ok(())
    } else {
        Err("the fleet did not end with every job done (or cancelled) exactly once".to_owned())
    }
}
