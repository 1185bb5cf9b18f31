//! `worker`: a job queue in SQLite (one worker at a time) or PostgreSQL
//! (many), worked by a [`Supervisor`], stopped cleanly by SIGINT, SIGTERM
//! or SIGHUP (`examples/src/bin/worker.rs`).
//!
//! ```text
//! main                                  #[tethered::main]; a signal stops it
//! └── scope `run`                       prints the summary from its cleanup, however it ends
//!     └── scope `held`                  the instance lock (lock.rs; SQLite only)
//!         ├── task `lock-watchdog`      periodic: keeps the lock row alive, shutdown included
//!         └── supervisor `worker`
//!             ├── static `metrics`      periodic: the progress bar, or a line on stderr
//!             ├── static `rescuer`      periodic (PostgreSQL): takes back jobs whose lease expired
//!             ├── (body)                takes jobs, at most `--concurrency` in flight
//!             ├── dynamic `job-17`      the scope `work`: works, marks the job done
//!             │   └── shield `lease`    renews the job's lease; cancels the job if it is lost
//!             └── dynamic `job-18`      ...
//! ```
//!
//! **The stop.** A signal stops `main`, and the stop reaches the
//! supervisor: its body stops taking jobs and returns; the jobs in flight
//! get `--grace` to finish (they do not look at the stop: a started job is
//! worth finishing), their leases renewed meanwhile; the ones still running
//! are then cancelled, and each job's cleanup returns it to the queue,
//! attempts unchanged. The static children are stopped last, once the jobs
//! are gone. After the supervisor has returned, the run returns every job
//! this owner still holds (there should be none: the cleanups did it) and
//! counts what is left (`lost`, which must be 0). Then the lock scope
//! cancels its watchdog and deletes the lock row. The process prints
//! `taken=… done=… returned=… lost=…` on stdout and exits 0.
//!
//! The grace period comes from `--grace`, known only at run time: in
//! `supervise!` it is written in parentheses, `grace (config.grace)`.

pub mod cli;
pub mod console;
pub mod fleet;
pub mod lock;
pub mod pg;
pub mod pg_cluster;
pub mod phases;
pub mod queue;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tethered::{CancelKind, CancelReason, Supervisor, SupervisorError, periodic};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use crate::output::say_err;
use cli::{Command, RunConfig};
use console::{Console, Progress};
use lock::{HeldError, Holder, LockError};
use pg::{Backoff, CancelRequest, Failed, Heard, PgQueue};
use phases::Phases;
use queue::{DbError, Queue};
use store::{Claimed, Renewal, Store};

/// How long a job's lease lasts without renewal: a crashed worker's jobs
/// are taken again this long after its last renewal.
///
/// (The default of the hidden `--lease`, see [`RunConfig::lease`].)
pub const LEASE: Duration = Duration::from_secs(10);

/// How often the leases of the jobs in flight, and the lock row, are
/// renewed for a `lease`: a quarter of it, at most once a second (1 s for
/// the default [`LEASE`]). A quarter, so that a slow tick or two does not
/// let a live job's lease expire (the process would take its own job again).
pub fn renew_every(lease: Duration) -> Duration {
    (lease / 4).min(Duration::from_secs(1))
}

/// How often the body looks for jobs when the queue was empty.
const POLL: Duration = Duration::from_millis(50);

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Jobs this process took.
    pub taken: u64,
    /// Jobs it finished.
    pub done: u64,
    /// Jobs it returned to the queue unfinished.
    pub returned: u64,
    /// Jobs that failed here and were queued again, to retry after a
    /// backoff (`--fail-every`).
    pub retried: u64,
    /// Jobs that failed here at their last attempt, and ended `failed`.
    pub failed: u64,
    /// Jobs it ended as `cancelled`, on request (`worker cancel`).
    pub cancelled: u64,
    /// Jobs it lost the lease of, and left to whoever holds them now.
    pub taken_over: u64,
    /// Jobs still `taken` by it after the returns: must be 0.
    pub lost: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "taken={} done={} returned={}",
            self.taken, self.done, self.returned
        )?;
        // Only when there are some: the line stays as it always was.
        if self.retried > 0 {
            write!(f, " retried={}", self.retried)?;
        }
        if self.failed > 0 {
            write!(f, " failed={}", self.failed)?;
        }
        if self.cancelled > 0 {
            write!(f, " cancelled={}", self.cancelled)?;
        }
        if self.taken_over > 0 {
            write!(f, " taken_over={}", self.taken_over)?;
        }
        write!(f, " lost={}", self.lost)
    }
}

impl Summary {
    /// Parses the line [`Display`](fmt::Display) writes.
    pub fn parse(line: &str) -> Option<Summary> {
        let mut summary = Summary::default();
        let mut fields = line.trim().split(' ').peekable();
        for (name, slot, optional) in [
            ("taken", &mut summary.taken, false),
            ("done", &mut summary.done, false),
            ("returned", &mut summary.returned, false),
            ("retried", &mut summary.retried, true),
            ("failed", &mut summary.failed, true),
            ("cancelled", &mut summary.cancelled, true),
            ("taken_over", &mut summary.taken_over, true),
            ("lost", &mut summary.lost, false),
        ] {
            if optional && !fields.peek()?.starts_with(&format!("{name}=")) {
                continue;
            }
            let (key, value) = fields.next()?.split_once('=')?;
            if key != name {
                return None;
            }
            *slot = value.parse().ok()?;
        }
        fields.next().is_none().then_some(summary)
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum WorkerError {
    /// The database could not be opened or used (exit 2).
    Db(DbError),
    /// Another instance holds the lock (exit 3).
    Locked(LockError),
    /// The supervisor failed (its body panicked).
    Supervisor(SupervisorError),
    /// The lock's scope failed.
    Scope(tethered::ScopeError),
    /// The options do not fit the queue (exit 2).
    Usage(String),
}

impl WorkerError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            WorkerError::Db(_) | WorkerError::Usage(_) => 2,
            WorkerError::Locked(_) => 3,
            WorkerError::Supervisor(_) | WorkerError::Scope(_) => 1,
        }
    }
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::Db(error) => error.fmt(f),
            WorkerError::Locked(error) => error.fmt(f),
            WorkerError::Supervisor(error) => error.fmt(f),
            WorkerError::Scope(error) => error.fmt(f),
            WorkerError::Usage(error) => f.write_str(error),
        }
    }
}

impl std::error::Error for WorkerError {}

impl From<tethered::ScopeError> for WorkerError {
    fn from(error: tethered::ScopeError) -> Self {
        WorkerError::Scope(error)
    }
}

impl From<DbError> for WorkerError {
    fn from(error: DbError) -> Self {
        WorkerError::Db(error)
    }
}

impl From<HeldError> for WorkerError {
    fn from(error: HeldError) -> Self {
        match error {
            HeldError::Lock(LockError::Db(error)) => WorkerError::Db(error),
            HeldError::Lock(error) => WorkerError::Locked(error),
            HeldError::Scope(error) => WorkerError::Scope(error),
        }
    }
}

/// The counts of a run, as the tasks make them.
#[derive(Debug, Default)]
struct Counters {
    taken: AtomicU64,
    done: AtomicU64,
    returned: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    taken_over: AtomicU64,
}

impl Counters {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::SeqCst);
    }
}

/// What the body, the jobs and the metrics of one run share.
#[derive(Debug)]
struct Shared {
    store: Store,
    owner: Arc<str>,
    config: RunConfig,
    counters: Counters,
    /// One permit per job in flight, `config.concurrency` in all.
    slots: Arc<Semaphore>,
    console: Arc<Console>,
    phases: Phases,
    /// The supervisor, once its body runs: for its report, when the run
    /// is cut short.
    supervisor: OnceLock<Supervisor>,
    /// Whether the summary was made: a run cut short makes it in a cleanup.
    summarized: AtomicBool,
    /// Woken when jobs are enqueued (PostgreSQL's NOTIFY): the body looks
    /// at once rather than at its next poll.
    wake: Notify,
    /// The jobs running here, by id: their scopes, to cancel one on
    /// request, and why it was cut short.
    running: Mutex<HashMap<i64, Running>>,
    /// The jobs (id, claim) taken and not yet counted done, returned,
    /// retried, failed, cancelled or taken over. Whatever is left at the
    /// end (a cleanup the database or its time cut short, a task that never
    /// ran) the summary counts: returned if it returns it, taken over if it
    /// is someone else's by then. So every job taken is counted once.
    unsettled: Mutex<HashSet<(i64, i64)>>,
}

/// A job running here: its scope, and where to say why it was cut short.
#[derive(Debug, Clone)]
struct Running {
    scope: tethered::ScopeHandle,
    cut_short: Arc<OnceLock<CutShort>>,
}

/// Why a job was cut short by something other than the shutdown.
#[derive(Debug, Clone)]
enum CutShort {
    /// Its lease was lost: what the renewal found.
    LeaseLost(String),
    /// `worker cancel` asked: the reason, with who asked.
    Cancelled(String),
}

impl Shared {
    fn in_flight(&self) -> usize {
        self.config.concurrency - self.slots.available_permits()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unsettled(&self) -> std::sync::MutexGuard<'_, HashSet<(i64, i64)>> {
        self.unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `job` as `counter` says, once: it is settled.
    fn settled(&self, job: &Claimed, counter: &AtomicU64) {
        if self.unsettled().remove(&(job.id, job.claim)) {
            Counters::add(counter, 1);
        }
    }
}

/// One job, in a scope of its own: works for as long as its id says, then
/// marks it done, while its lease is renewed beside it.
///
/// A job that does not finish (cancelled once the grace is over, or
/// because its lease was lost) goes back to the queue from the scope's
/// cleanup, attempts unchanged: a no-op when the job is no longer ours
/// (the write is fenced by the claim). The slot frees up when the scope has
/// ended, the job back in the queue.
#[tethered::scoped]
async fn work(
    shared: Arc<Shared>,
    job: Claimed,
    slot: OwnedSemaphorePermit,
) -> Result<(), WorkerError> {
    let finished = Arc::new(AtomicBool::new(false));
    let cut_short: Arc<OnceLock<CutShort>> = Arc::new(OnceLock::new());
    let scope = scope!().handle();
    let running = Running {
        scope: scope.clone(),
        cut_short: cut_short.clone(),
    };
    shared.running().insert(job.id, running);
    {
        let (shared, job, finished, cut_short) = (
            shared.clone(),
            job.clone(),
            finished.clone(),
            cut_short.clone(),
        );
        // The slot is held until the job is back.
        let _slot = slot;
        defer!(async move {
            let _slot = _slot;
            shared.running().remove(&job.id);
            if finished.load(Ordering::SeqCst) {
                return Ok(());
            }
            // A settling that fails, or that the cleanup's time cuts short,
            // leaves the job to the summary.
            settle(&shared, &job, cut_short.get()).await
        });
    }
    // The lease, renewed for as long as this body runs: dropping `alive`
    // (the body returned, or was cancelled) ends the heartbeat. A shield,
    // so that a cancellation never cuts a renewal in half; it ends itself.
    let (alive, body_gone) = oneshot::channel::<()>();
    shield!(
        "lease",
        heartbeat(shared.clone(), job.clone(), scope, body_gone, cut_short)
    );
    tokio::time::sleep(shared.config.work_for(job.id)).await;
    // A finish (or a failure) refused by the fence: the lease was lost
    // between the last beat and now, and the job is someone else's; nothing
    // to give back.
    let counters = &shared.counters;
    let counter = match &shared.store {
        Store::Postgres(queue) if shared.config.fails(job.id) => {
            let error = format!(
                "failed on purpose (--fail-every {}) at attempt {}",
                shared.config.fail_every,
                job.attempts + 1
            );
            let backoff = Backoff {
                base: shared.config.retry_base,
                ..Backoff::default()
            };
            let failed = || queue.fail(&job, &shared.owner, &error, backoff, random_unit());
            match patiently(&shared, shared.config.lease, failed).await? {
                Failed::Retry { after } => {
                    let after =
                        Duration::from_millis(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
                    shared.console.say(format_args!(
                        "job {}: {error}; retried in {}",
                        job.id,
                        humantime::format_duration(after)
                    ));
                    &counters.retried
                }
                Failed::GaveUp => {
                    shared
                        .console
                        .say(format_args!("job {}: {error}, its last: failed", job.id));
                    &counters.failed
                }
                Failed::Fenced => {
                    shared
                        .console
                        .say(fenced(job.id, "its failure was not recorded"));
                    &counters.taken_over
                }
            }
        }
        _ => {
            let finish = || shared.store.finish(&job, &shared.owner);
            if patiently(&shared, shared.config.lease, finish).await? {
                &counters.done
            } else {
                shared
                    .console
                    .say(fenced(job.id, "its result was not written"));
                &counters.taken_over
            }
        }
    };
    finished.store(true, Ordering::SeqCst);
    shared.settled(&job, counter);
    drop(alive);
    Ok(())
}

/// What becomes of a job whose body did not finish it: recorded
/// `cancelled` when `worker cancel` asked, otherwise returned to the queue
/// if it is still ours (its attempts as they were), or left to whoever
/// holds it now. Counted once it is settled.
async fn settle(
    shared: &Shared,
    job: &Claimed,
    cut_short: Option<&CutShort>,
) -> Result<(), DbError> {
    let lease = shared.config.lease;
    match cut_short {
        // Returned below if it is still ours after all (the database was
        // only unreachable); otherwise left to its holder, and counted as
        // taken over.
        Some(CutShort::LeaseLost(why)) => {
            shared.console.say(format_args!("job {}: {why}", job.id));
        }
        Some(CutShort::Cancelled(why)) => {
            shared
                .console
                .say(format_args!("job {}: cancelled: {why}", job.id));
            if let Store::Postgres(queue) = &shared.store {
                let cancelled = || queue.cancelled(job, &shared.owner, why);
                if patiently(shared, lease, cancelled).await? {
                    shared.settled(job, &shared.counters.cancelled);
                    return Ok(());
                }
            }
        }
        // A cancelled job is cleaned up in its own task, so its reason is at
        // hand (past the link that says the job's scope was cancelled with
        // its task): the first one tells the operator that the grace is
        // over.
        None => {
            if let Some(reason) = tethered::current().cancel_reason() {
                let reason = match (reason.kind(), reason.cause()) {
                    (CancelKind::ParentCancelled, Some(cause)) => cause.clone(),
                    _ => reason,
                };
                shared.phases.cancelled(&reason, shared.in_flight());
            }
        }
    }
    // Tried until the database answers, for as long as the lease lasts
    // (then the job is the rescuer's anyway).
    let release = || shared.store.release(job, &shared.owner);
    // Not ours any more (the lease was lost, or expired while the database
    // was away): someone else's now.
    let counter = if patiently(shared, lease, release).await? {
        &shared.counters.returned
    } else {
        // A lost lease was said above; anything else found out here.
        if !matches!(cut_short, Some(CutShort::LeaseLost(_))) {
            shared.console.say(fenced(job.id, "it was not returned"));
        }
        &shared.counters.taken_over
    };
    shared.settled(job, counter);
    Ok(())
}

/// What a worker says when the fence refuses a write: the job's lease was
/// lost (it was rescued while this worker was paused or cut off), found out
/// by the write rather than by a renewal, whichever came first.
fn fenced(id: i64, what: &str) -> String {
    format!("job {id}: lease lost: job {id} was taken over before this worker's write; {what}")
}

/// Runs `write` until the database answers, with the backoff the body's
/// takes use, for at most `within`: a connection the server dropped (a
/// restart, `pg_terminate_backend`) fails once, and the pool makes a new
/// one for the next try. A job's write must not fail, and leave its job
/// uncounted, for a blip.
async fn patiently<T, Write: Future<Output = Result<T, DbError>>>(
    shared: &Shared,
    within: Duration,
    mut write: impl FnMut() -> Write,
) -> Result<T, DbError> {
    let deadline = tokio::time::Instant::now() + within;
    let mut backoff = Duration::ZERO;
    loop {
        match write().await {
            Ok(answer) => return Ok(answer),
            Err(error) if tokio::time::Instant::now() + backoff >= deadline => {
                return Err(error);
            }
            Err(error) => {
                // The first retry at once: a dropped connection is replaced.
                if !backoff.is_zero() {
                    shared.console.say(format_args!(
                        "{error}; trying again in {}",
                        humantime::format_duration(backoff)
                    ));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).clamp(RETRY_FIRST, RETRY_MAX);
            }
        }
    }
}

/// A random number in [0, 1), for a backoff's jitter: std's hasher keys are
/// random (and differ at each call), which is all a jitter needs.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // The top 53 bits, as a fraction (exact in an f64).
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Renews `job`'s lease every [`renew_every`] of it until the job's body is
/// gone. When a renewal finds the lease lost (the job was rescued, maybe
/// claimed by another worker), or the lease could not be renewed for as
/// long as it lasts (the database is unreachable), it cancels the job, with
/// that as its reason: the job must not write what it did.
async fn heartbeat(
    shared: Arc<Shared>,
    job: Claimed,
    scope: tethered::ScopeHandle,
    mut body_gone: oneshot::Receiver<()>,
    cut_short: Arc<OnceLock<CutShort>>,
) {
    let lease = shared.config.lease;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(renew_every(lease)) => {}
            _ = &mut body_gone => return,
        }
        let why = match shared.store.renew(&job, &shared.owner, lease).await {
            Ok(Renewal::Renewed) => {
                renewed = tokio::time::Instant::now();
                continue;
            }
            Ok(Renewal::Lost(lost)) => lost.to_string(),
            Err(error) if renewed.elapsed() >= lease => format!(
                "database unreachable: the lease could not be renewed for {}: {error}",
                humantime::format_duration(lease)
            ),
            // Tried again at the next beat, while the lease still holds.
            Err(_) => continue,
        };
        let _ = cut_short.set(CutShort::LeaseLost(why.clone()));
        scope.cancel(why);
        return;
    }
}

/// On PostgreSQL, hears of new jobs (waking the body) and of cancel
/// requests (cancelling the job, if it runs here), on a connection of its
/// own; reconnects with a backoff when it is lost, while the body polls.
/// On SQLite there is nothing to hear: it waits for the stop.
async fn listener(shared: Arc<Shared>) {
    let Store::Postgres(queue) = &shared.store else {
        tethered::stop_requested().await;
        return;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut heard = |heard: Heard| match heard {
            Heard::Jobs => shared.wake.notify_one(),
            Heard::Cancel { id, by, reason } => {
                let running = shared.running().get(&id).cloned();
                if let Some(Running { scope, cut_short }) = running {
                    let why = format!("{reason} (asked by {by})");
                    let _ = cut_short.set(CutShort::Cancelled(why));
                    scope.cancel(CancelReason::explicit(reason).with_origin(by));
                }
            }
        };
        let listened = tokio::select! {
            listened = queue.listen(&mut heard) => listened,
            _ = tethered::stop_requested() => return,
        };
        if let Err(error) = listened {
            shared.console.say(format_args!(
                "{error}; listening again in {} (polling meanwhile)",
                humantime::format_duration(backoff)
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = tethered::stop_requested() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// On PostgreSQL, takes back the jobs of workers that died or lost the
/// database (their leases expired), every [`renew_every`] of the lease,
/// while this worker is the leader; on SQLite, `take` does it, and this
/// only waits for the stop.
///
/// Every worker runs one, and at each tick each asks for (or renews) the
/// lead: one of them holds the current term, issued by the database, and
/// only its rescue statement, which checks the term as it acts, does
/// anything.
async fn rescuer(shared: Arc<Shared>) -> Result<(), tethered::PeriodicError> {
    match &shared.store {
        Store::Postgres(queue) => rescue(
            queue.clone(),
            shared.owner.clone(),
            shared.console.clone(),
            shared.config.lease,
            shared.config.enqueue_every,
            Arc::new(AtomicI64::new(0)),
        )
        .await
        .map(drop),
        Store::Sqlite(_) => {
            tethered::stop_requested().await;
            Ok(())
        }
    }
}

/// One tick of the rescuer: the lead, then (with `--enqueue-every`) the
/// period's scheduled job, then the rescue, each under the term. `held` is
/// the term it held at the last tick (0: none), to say when that changes.
#[periodic(every = (renew_every(lease)), overlap = skip, first = after, name = "rescuer")]
async fn rescue(
    queue: PgQueue,
    owner: Arc<str>,
    console: Arc<Console>,
    lease: Duration,
    enqueue_every: Option<Duration>,
    held: Arc<AtomicI64>,
) -> Result<(), DbError> {
    let Some(term) = queue.lead(&owner, lease).await? else {
        if held.swap(0, Ordering::SeqCst) != 0 {
            console.say("leader: another worker's term is current now");
        }
        return Ok(());
    };
    if held.swap(term, Ordering::SeqCst) != term {
        console.say(format_args!("leader: term {term}"));
    }
    if let Some(every) = enqueue_every
        && let Some(id) = queue
            .enqueue_scheduled(&owner, term, "scheduled", every)
            .await?
    {
        console.say(format_args!("leader: enqueued scheduled job {id}"));
    }
    let rescued = queue.rescue_expired(&owner, term).await?;
    if !rescued.is_empty() {
        console.say(format_args!(
            "rescued {} jobs whose lease had expired: {rescued:?}",
            rescued.len()
        ));
    }
    Ok(())
}

/// The progress bar, or a line of counts on stderr, once a second.
#[periodic(every = "1s", overlap = skip, first = after, name = "metrics")]
async fn metrics(shared: Arc<Shared>) {
    let counters = &shared.counters;
    let remaining = match shared.store.counts().await {
        Ok(counts) => counts.queued + counts.taken,
        Err(error) => return shared.console.say(error),
    };
    shared.console.progress(Progress {
        in_flight: shared.in_flight() as u64,
        taken: Counters::get(&counters.taken),
        done: Counters::get(&counters.done),
        returned: Counters::get(&counters.returned),
        remaining,
    });
}

/// Works the queue at `config.db` until stopped (or, with
/// `exit_when_empty`, until it is empty), holding the instance lock.
///
/// When the run is cut short (a second signal cancels `main`), its cleanup
/// still prints the last phase and the summary: every job this owner still
/// holds is returned first, so the summary's `lost` is true.
#[tethered::scoped]
pub async fn run(config: RunConfig) -> Result<Summary, WorkerError> {
    if let Some(option) = config.postgres_only() {
        return Err(WorkerError::Usage(format!(
            "{option} needs the queue on PostgreSQL (--db postgres://…): on SQLite there is \
             one worker, no leader and no retries"
        )));
    }
    let store = Store::open(&config.db, config.init, config.concurrency + 2).await?;
    let holder = Holder::this_process();
    // The watchdog renews the row until the work has ended, shutdown
    // included. The row outlives the leases: renewed at most `renew` before
    // the process dies (one more `renew` of slack for a late renewal), it
    // expires at least `lease` after the death, when every lease the dead
    // process held has expired too. The next holder finds its jobs
    // takeable at once.
    let renew = renew_every(config.lease);
    let ttl = config.lease + 2 * renew;
    let console = Arc::new(Console::for_stdout());
    let shared = Arc::new(Shared {
        slots: Arc::new(Semaphore::new(config.concurrency)),
        phases: Phases::new(console.clone(), config.grace, config.tree),
        counters: Counters::default(),
        store: store.clone(),
        owner: Arc::from(holder.name.as_str()),
        config,
        console,
        supervisor: OnceLock::new(),
        summarized: AtomicBool::new(false),
        wake: Notify::new(),
        running: Mutex::new(HashMap::new()),
        unsettled: Mutex::new(HashSet::new()),
    });
    // Runs however the run ends, after everything under it (the lock's
    // scope, the supervisor's shutdown) has: when the run was cancelled,
    // nothing after the `held(…).await` below runs, and this says what the
    // run did instead.
    let closing = shared.clone();
    defer!(async move {
        // The run never started (the lock was refused): nothing to say.
        if closing.supervisor.get().is_none() {
            return;
        }
        if !closing.summarized.load(Ordering::SeqCst) {
            match summarize(&closing).await {
                Ok(summary) => print_summary(&summary),
                Err(error) => closing
                    .console
                    .say(format_args!("cannot make the summary: {error}")),
            }
        }
        // `held`'s scope has ended, however: it cancelled the watchdog,
        // joined it, and then ran its cleanup, which deletes the row.
        if let Store::Sqlite(queue) = &closing.store {
            match lock::holder(queue) {
                Ok(None) => closing
                    .console
                    .say("lock: watchdog cancelled and joined, then the lock row deleted"),
                Ok(Some((holder, pid))) => closing.console.say(format_args!(
                    "lock: the lock row is still there, held by `{holder}` (pid {pid})"
                )),
                Err(error) => closing.console.say(error),
            }
        }
        if closing.config.tree {
            closing.console.say(format_args!(
                "the task tree at the end:\n{}",
                tethered::tree()
            ));
        }
        closing.console.finish();
    });
    let work = supervised(shared.clone());
    // One worker at a time on a SQLite file (the instance lock); on
    // PostgreSQL, as many as there are: the claims keep them apart.
    match store {
        Store::Sqlite(queue) => lock::held(queue, holder, ttl, renew, work).await?,
        Store::Postgres(_) => work.await,
    }
}

async fn supervised(shared: Arc<Shared>) -> Result<Summary, WorkerError> {
    shared.console.say(format_args!(
        "`{}` running on {} (concurrency {}, grace {}, work {})",
        shared.owner,
        store::shown(&shared.config.db),
        shared.config.concurrency,
        humantime::format_duration(shared.config.grace),
        humantime::format_duration(shared.config.work),
    ));
    let grace = shared.config.grace;

    let supervised = tethered::supervise! {
        name: "worker",
        // Started jobs get `--grace` to finish; then they are cancelled and
        // their claims return them to the queue.
        shutdown: grace (grace) then cancel "5s",
        // The metrics are stopped last, once the jobs are gone, within a
        // second (a schedule ends once its run in progress has).
        child "metrics" (shutdown "1s") => metrics(shared.clone()),
        child "rescuer" (shutdown "1s") => rescuer(shared.clone()),
        child "listener" (shutdown "1s") => listener(shared.clone()),
        body |sv| {
            let _ = shared.supervisor.set(sv.clone());
            take_jobs(sv, &shared).await
        },
    }
    .map_err(WorkerError::Supervisor)?;
    let summary = summarize(&shared).await?;
    if let Some(Err(error)) = supervised.value {
        return Err(error.into());
    }
    Ok(summary)
}

/// Phase 4 and the summary, once the supervisor has shut down: returns
/// the jobs the guards could not (a database error), or whose task
/// outlived the shutdown, and counts what this owner still holds.
async fn summarize(shared: &Shared) -> Result<Summary, DbError> {
    shared.summarized.store(true, Ordering::SeqCst);
    if let Some(supervisor) = shared.supervisor.get() {
        // Shut down already: this is its report.
        let report = supervisor.shutdown("the run is over").await;
        shared.phases.stopped(&report);
    }
    let returned = shared.store.release_all(&shared.owner).await?;
    let counters = &shared.counters;
    // What no task settled: returned just now, or someone else's (rescued
    // once its lease expired).
    let unsettled = std::mem::take(&mut *shared.unsettled());
    let taken_over = unsettled.difference(&returned).count();
    Counters::add(&counters.returned, (unsettled.len() - taken_over) as u64);
    Counters::add(&counters.taken_over, taken_over as u64);
    let lost = shared.store.held_by(&shared.owner).await?;
    Ok(Summary {
        taken: Counters::get(&counters.taken),
        done: Counters::get(&counters.done),
        returned: Counters::get(&counters.returned),
        retried: Counters::get(&counters.retried),
        failed: Counters::get(&counters.failed),
        cancelled: Counters::get(&counters.cancelled),
        taken_over: Counters::get(&counters.taken_over),
        lost,
    })
}

/// The supervisor's body: takes jobs while slots are free, and spawns each
/// as a dynamic child, until stopped (phases 1 and 2 of the shutdown).
async fn take_jobs(sv: &Supervisor, shared: &Arc<Shared>) -> Result<(), DbError> {
    let taken = take_until_stopped(sv, shared).await;
    if let Some(reason) = tethered::current().stop_reason() {
        shared.phases.stopping(&reason, shared.in_flight());
    }
    taken
}

async fn take_until_stopped(sv: &Supervisor, shared: &Arc<Shared>) -> Result<(), DbError> {
    let config = &shared.config;
    // After a database error (the database restarting, a connection
    // killed), tried again, with a backoff that a success resets: losing
    // the database for a while is no reason to stop.
    let mut backoff = RETRY_FIRST;
    loop {
        if tethered::is_stopping() {
            return Ok(());
        }
        let free = shared.slots.available_permits();
        if free == 0 {
            // Wait for a slot (without keeping it: the next take counts).
            tokio::select! {
                slot = shared.slots.acquire() => drop(slot),
                _ = tethered::stop_requested() => return Ok(()),
            }
            continue;
        }
        let jobs = match shared.store.take(&shared.owner, free, config.lease).await {
            Ok(jobs) => jobs,
            Err(error) => {
                retry_after(shared, &error, &mut backoff).await;
                continue;
            }
        };
        backoff = RETRY_FIRST;
        if jobs.is_empty() {
            // Nothing to take now; empty is nothing queued and nothing
            // taken, by anyone: a job still leased by a dead process (its
            // lease not yet expired) is waited for, and taken once it
            // expires, as is a failed job waiting for its retry.
            if config.exit_when_empty && shared.in_flight() == 0 {
                match shared.store.counts().await {
                    Ok(counts) if counts.taken == 0 && counts.queued == 0 => {
                        shared.console.say("the queue is empty; stopping");
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        retry_after(shared, &error, &mut backoff).await;
                        continue;
                    }
                }
            }
            let poll = match shared.store {
                Store::Sqlite(_) => POLL,
                Store::Postgres(_) => config.poll,
            };
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = shared.wake.notified() => {}
                _ = tethered::stop_requested() => return Ok(()),
            }
            continue;
        }
        Counters::add(&shared.counters.taken, jobs.len() as u64);
        shared
            .unsettled()
            .extend(jobs.iter().map(|job| (job.id, job.claim)));
        for job in jobs {
            let slot = shared
                .slots
                .clone()
                .try_acquire_owned()
                .expect("no more jobs taken than free slots");
            let name = format!("job-{}", job.id);
            let refused = job.clone();
            // Refused once the shutdown has begun (the future is dropped
            // unpolled): the job goes back at once (or, if the database is
            // gone, by the run's `release_all`, or by a rescue).
            if sv.spawn(name, work(shared.clone(), job, slot)).is_err() {
                match shared.store.release(&refused, &shared.owner).await {
                    Ok(true) => shared.settled(&refused, &shared.counters.returned),
                    // Its lease lost already, to a rescue.
                    Ok(false) => shared.settled(&refused, &shared.counters.taken_over),
                    Err(error) => shared
                        .console
                        .say(format_args!("job {}: {error}", refused.id)),
                }
            }
        }
    }
}

/// The first wait after a database error; each next one doubles, up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between tries after database errors.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Says what failed, and waits `backoff` (or for the stop) before the next
/// try, doubling it for the one after.
async fn retry_after(shared: &Shared, error: &DbError, backoff: &mut Duration) {
    shared.console.say(format_args!(
        "{error}; trying again in {}",
        humantime::format_duration(*backoff)
    ));
    tokio::select! {
        () = tokio::time::sleep(*backoff) => {}
        _ = tethered::stop_requested() => {}
    }
    *backoff = (*backoff * 2).min(RETRY_MAX);
}

/// Adds `count` jobs to the queue at `db` (with `init`, in a SQLite
/// database of another program's too); returns the total.
pub async fn enqueue(db: &str, count: u64, init: bool) -> Result<u64, WorkerError> {
    Ok(Store::open(db, init, 1).await?.enqueue(count).await?)
}

/// `worker cancel`: asks for job `id` to be cancelled, for `reason`, in
/// the name of this user at this host; says what happened.
pub async fn cancel(db: &str, id: i64, reason: &str) -> Result<String, WorkerError> {
    let Store::Postgres(queue) = Store::open(db, false, 1).await? else {
        return Err(WorkerError::Db(DbError(
            "`worker cancel` needs a PostgreSQL queue (--db postgres://…): a SQLite queue \
             has one worker, stopped with a signal"
                .to_owned(),
        )));
    };
    let by = asker();
    Ok(match queue.request_cancel(id, &by, reason).await? {
        CancelRequest::CancelledQueued => format!("job {id} was queued: cancelled"),
        CancelRequest::Asked { owner } => {
            format!("job {id} is running: asked {owner} to cancel it")
        }
        CancelRequest::AlreadyEnded(state) => format!("job {id} had ended: it is {state}"),
        CancelRequest::NoSuchJob => {
            return Err(WorkerError::Db(DbError(format!("there is no job {id}"))));
        }
    })
}

/// Who asks, from where: `user@host`.
pub(crate) fn asker() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|host| host.trim().to_owned())
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{host}").replace(' ', "_")
}

/// The program: parses `args` (without the program's name), runs the
/// command, prints what it has to, and says how to exit.
pub async fn main(args: Vec<String>) -> ExitCode {
    let command = match cli::parse(&args) {
        Ok(command) => command,
        // Help and version too, which exit 0.
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    match command {
        Command::Enqueue { db, count, init } => match enqueue(&db, count, init).await {
            Ok(total) => {
                print_out(format_args!(
                    "enqueued {count} jobs ({total} in total) in {}",
                    store::shown(&db)
                ));
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Run(config) => match run(config).await {
            Ok(summary) => {
                print_summary(&summary);
                if summary.lost == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(error) => fail(&error),
        },
        Command::Cancel { job, reason, db } => match cancel(&db, job, &reason).await {
            Ok(said) => {
                print_out(said);
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Demo { fleet: true, db } => match fleet::demo(db).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                say_err(format_args!("worker demo: {message}"));
                ExitCode::FAILURE
            }
        },
        Command::Demo { fleet: false, .. } => match demo().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                crate::errln!("worker demo: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn fail(error: &WorkerError) -> ExitCode {
    say_err(format_args!("worker: {error}"));
    ExitCode::from(error.exit_code())
}

/// The summary line, on stdout.
fn print_summary(summary: &Summary) {
    print_out(summary);
}

fn print_out(line: impl fmt::Display) {
    crate::output::print_out("worker", line);
}

/// Runs this program as a child, `worker run …`, sends it SIGTERM after
/// `stop_after` (if given and it is still running); returns its summary.
async fn run_child(db: &Path, stop_after: Option<Duration>) -> Result<Summary, String> {
    let exe = std::env::current_exe().map_err(|error| format!("cannot find myself: {error}"))?;
    // One job in 100 takes 1.5 s: some are still running when the grace
    // of 1 s is over, and the shutdown has to cancel and return them.
    let mut args: Vec<String> = [
        "run",
        "--db",
        &db.display().to_string(),
        "--concurrency",
        "16",
        "--grace",
        "1s",
        "--slow-every",
        "100",
        "--slow-ms",
        "1500",
    ]
    .map(str::to_owned)
    .into();
    match stop_after {
        Some(_) => args.push("--tree".to_owned()),
        None => args.push("--exit-when-empty".to_owned()),
    }
    let mut child = tokio::process::Command::new(exe)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start the worker: {error}"))?;
    let pid = child.id().ok_or("the worker exited at once")?;
    println!("demo: started `worker {}` (pid {pid})", args.join(" "));
    // Relay its stderr, and wait for it to say it runs before the clock
    // starts.
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let (running_tx, running_rx) = tokio::sync::oneshot::channel();
    let relay = tokio::spawn(async move {
        let mut running_tx = Some(running_tx);
        while let Ok(Some(line)) = stderr.next_line().await {
            println!("  | {line}");
            if line.contains("running on") {
                running_tx.take().map(|tx| tx.send(()));
            }
        }
    });
    let _ = running_rx.await;
    if let Some(after) = stop_after {
        tokio::select! {
            () = tokio::time::sleep(after) => {
                println!("demo: sending SIGTERM to {pid}");
                let status = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await
                    .map_err(|error| format!("cannot run kill: {error}"))?;
                if !status.success() {
                    return Err(format!("kill -TERM {pid} failed: {status}"));
                }
            }
            _ = child.wait() => {}
        }
    }
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut out, &mut stdout)
            .await
            .map_err(|error| format!("cannot read the worker's output: {error}"))?;
    }
    let status = child
        .wait()
        .await
        .map_err(|error| format!("cannot wait for the worker: {error}"))?;
    let _ = relay.await;
    let line = stdout.lines().last().unwrap_or_default();
    println!("demo: worker exited with {status}; summary: {line}");
    if !status.success() {
        return Err(format!("the worker failed: {status}"));
    }
    Summary::parse(line).ok_or_else(|| format!("no summary line in {stdout:?}"))
}

/// The demo: a fresh queue of 3000 jobs in a temporary directory, a worker
/// stopped with SIGTERM after 2 s, a second one that finishes the queue.
pub async fn demo() -> Result<(), String> {
    let started = Instant::now();
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "tethered-worker-demo-{}-{}",
        std::process::id(),
        queue::now_ms()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let db = dir.join("queue.sqlite3");
    let total = enqueue(&db.display().to_string(), 3000, false)
        .await
        .map_err(|error| error.to_string())?;
    println!("demo: enqueued {total} jobs in {}", db.display());

    let first = run_child(&db, Some(Duration::from_secs(2))).await?;
    let second = run_child(&db, None).await?;

    let queue = Queue::open(&db).map_err(|error| error.to_string())?;
    let counts = queue.counts().map_err(|error| error.to_string())?;
    let twice: i64 = queue
        .conn()
        .query_row(
            "SELECT count(*) FROM jobs WHERE done_count > 1",
            [],
            |row| row.get(0),
        )
        .map_err(|error| error.to_string())?;
    println!("demo: first run:  {first}");
    println!("demo: second run: {second}");
    println!(
        "demo: queue: queued={} taken={} done={} failed={}; done more than once: {twice}; took {:.1}s",
        counts.queued,
        counts.taken,
        counts.done,
        counts.failed,
        started.elapsed().as_secs_f64()
    );
    drop(queue);
    let _ = std::fs::remove_dir_all(&dir);
    if counts.done == total && twice == 0 && first.lost == 0 && second.lost == 0 {
        Ok(())
    } else {
        Err("the queue did not end up fully done exactly once".to_owned())
    }
}
