//! [`Periodic`]: run a body once per period, with a policy for runs that
//! overlap, so that periodic work never piles up.
//!
//! tokio's `interval` decides how *ticks* catch up after a busy executor;
//! it cannot decide what happens when a *run* is still going when the next
//! tick arrives. [`Overlap`] does: cancel the running one, skip the tick,
//! queue at most one run, or allow a bounded number at once.
//!
//! The schedule runs in a scope of its own, child of the current one, and
//! every run is a task of that scope. Cancelling the enclosing scope cancels
//! the schedule and its runs; asking it to stop lets the runs in progress
//! finish and starts no new one.

mod schedule;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use crate::cleanup::CleanupOutput;
use crate::deadline;
use crate::error::{PanicPayload, ScopeError, TaskError};
use crate::metrics::{PeriodicMetrics, RunEnd, RunTimer};
use crate::never::Never;
use crate::node::NodeKind;
use crate::reason::{CancelKind, CancelReason};
use crate::scope::{Scope, ScopeBuilder};
use crate::task::TaskHandle;
use crate::unwind::CatchUnwind;
use schedule::{Jitter, Schedule};

/// What happens when a tick arrives while a run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Cancel the running run (reason [`CancelKind::Overlap`], naming the
    /// tick), wait for it to end, then start the new one.
    Cancel,
    /// Skip this tick.
    Skip,
    /// Start the new run as soon as the running one ends; at most one run
    /// waits, further ticks meanwhile are skipped.
    Queue,
    /// Up to `n` runs at once; a tick beyond that is skipped.
    Concurrent(NonZeroUsize),
}

/// What happens to ticks missed while the executor was too busy to fire them
/// on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Fire once for the late tick, drop the ones missed since, and go on at
    /// the next tick of the original grid.
    #[default]
    Skip,
    /// Fire every missed tick at once, then go on on the original grid.
    Burst,
    /// Fire once, late, and move the grid: the next tick is one period later.
    Delay,
}

/// What a failed run does to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Log it (through `tracing`), count it, keep going.
    #[default]
    Continue,
    /// Stop the schedule: start no new run, let the others finish, and
    /// return the failure.
    Stop,
}

/// What a stop request (a graceful shutdown) does to the schedule.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tethered::{OnStop, Periodic, Scope};
///
/// // A heartbeat that must go on while the rest of the service drains.
/// let heartbeat = Periodic::every(Duration::from_secs(1))
///     .on_stop(OnStop::Continue)
///     .run(|| async { /* tell the cluster we are alive */ });
/// Scope::run(async |scope| {
///     let heartbeat = scope.spawn(heartbeat);
///     scope.stop("deploy");
///     tokio::time::sleep(Duration::from_millis(3_500)).await; // draining
///     assert!(!heartbeat.is_finished());
///     let outcome = heartbeat.cancel_and_wait("drained").await;
///     assert!(outcome.is_cancelled());
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStop {
    /// Start no new run, let the running ones finish, and end with the
    /// stats.
    #[default]
    End,
    /// Keep ticking: only a cancellation ends the schedule. For work that
    /// must go on while the rest of a service shuts down gracefully, like a
    /// heartbeat or the renewal of a lock, cancelled once what it serves
    /// has ended (by its scope's `on_exit = cancel`, say).
    Continue,
}

/// Counts of what a schedule did. Read them while it runs through a
/// [`PeriodicStatsHandle`]; [`Periodic::run`] returns the final ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeriodicStats {
    /// Ticks that fired (a dropped missed tick does not fire).
    pub ticks: u64,
    /// Runs started.
    pub started: u64,
    /// Runs that completed (returned `()` or `Ok`).
    pub completed: u64,
    /// Runs that failed (returned `Err` or panicked).
    pub failed: u64,
    /// Ticks skipped because of the overlap policy.
    pub skipped: u64,
    /// Ticks dropped because they were missed ([`Missed::Skip`]).
    pub missed: u64,
    /// Ticks that found a run still going: runs that overran their period,
    /// whatever the overlap policy then did about it.
    pub overran: u64,
    /// Runs cancelled because the next tick replaced them
    /// ([`Overlap::Cancel`]).
    pub cancelled_by_overlap: u64,
    /// Runs cancelled by the per-run timeout.
    pub timed_out: u64,
    /// Runs cancelled because the schedule was cancelled.
    pub cancelled: u64,
    /// The most runs that were going at once.
    pub max_concurrent: u64,
}

/// A live view of a schedule's [`PeriodicStats`].
#[derive(Debug, Clone, Default)]
pub struct PeriodicStatsHandle(Arc<Counters>);

/// The counters behind [`PeriodicStats`]: atomics, so that counting costs
/// the tick loop (and each run) no lock.
#[derive(Debug, Default)]
struct Counters {
    ticks: AtomicU64,
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    missed: AtomicU64,
    overran: AtomicU64,
    cancelled_by_overlap: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    max_concurrent: AtomicU64,
}

impl PeriodicStatsHandle {
    /// The counts so far.
    pub fn get(&self) -> PeriodicStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.0;
        PeriodicStats {
            ticks: read(&counters.ticks),
            started: read(&counters.started),
            completed: read(&counters.completed),
            failed: read(&counters.failed),
            skipped: read(&counters.skipped),
            missed: read(&counters.missed),
            overran: read(&counters.overran),
            cancelled_by_overlap: read(&counters.cancelled_by_overlap),
            timed_out: read(&counters.timed_out),
            cancelled: read(&counters.cancelled),
            max_concurrent: read(&counters.max_concurrent),
        }
    }

    fn add(&self, counter: impl FnOnce(&Counters) -> &AtomicU64, amount: u64) {
        if amount > 0 {
            counter(&self.0).fetch_add(amount, Ordering::Relaxed);
        }
    }
}

/// The shortest period a schedule ticks at: tokio's timer resolution.
/// Shorter periods are taken as this; see [`Periodic::every`].
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Why a schedule ended without being cancelled.
#[derive(Debug)]
#[non_exhaustive]
pub enum PeriodicError {
    /// A run failed with [`OnError::Stop`].
    RunFailed {
        /// The tick whose run failed.
        tick: u64,
        /// What it returned or how it panicked.
        failure: RunFailure,
        /// The counts when the schedule ended.
        stats: PeriodicStats,
    },
    /// The schedule's own scope failed (the closure that makes each run's
    /// future panicked, for one).
    Scope(ScopeError),
    /// The schedule's period is zero (from a value computed at run time:
    /// the `#[periodic]` macro rejects a zero literal). It ended at once,
    /// with no tick.
    ZeroPeriod,
}

/// How a run failed.
#[derive(Debug, Clone)]
pub enum RunFailure {
    /// It returned `Err`.
    Error(TaskError),
    /// It panicked.
    Panic(PanicPayload),
}

impl fmt::Display for RunFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunFailure::Error(error) => write!(f, "failed: {error}"),
            RunFailure::Panic(payload) => write!(f, "panicked: {payload}"),
        }
    }
}

impl fmt::Display for PeriodicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeriodicError::RunFailed { tick, failure, .. } => {
                write!(f, "the run of tick {tick} {failure}; the schedule stopped")
            }
            PeriodicError::Scope(error) => write!(f, "{error}"),
            PeriodicError::ZeroPeriod => f.write_str(
                "the schedule's period is zero, so it never ran; a period is at least 1 ms",
            ),
        }
    }
}

impl std::error::Error for PeriodicError {}

/// What a periodic run may return: `()`, or `Result<(), E>`, whose `Err` is
/// a failed run (counted, logged, and answered by [`OnError`]).
///
/// Implemented by tethered for those types; not meant to be implemented
/// elsewhere.
#[diagnostic::on_unimplemented(
    message = "a periodic run returns `()` or `Result<(), E>`, not `{Self}`",
    label = "each run returns `{Self}`",
    note = "`Err` (with `E: Display + Debug + Send + Sync + 'static`) is a failed run, which `on_error` answers; to hand a value on, send it over a channel"
)]
pub trait RunOutput: Send + 'static {
    /// `Err` when the run failed.
    #[doc(hidden)]
    fn into_run_result(self) -> Result<(), TaskError>;
}

impl RunOutput for () {
    fn into_run_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A run that never returns: it ends when it is cancelled (by the next
/// tick with `Overlap::Cancel`, its timeout, or the schedule's end).
#[diagnostic::do_not_recommend]
impl RunOutput for Never {
    fn into_run_result(self) -> Result<(), TaskError> {
        self
    }
}

impl<E> RunOutput for Result<(), E>
where
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    fn into_run_result(self) -> Result<(), TaskError> {
        CleanupOutput::into_cleanup_result(self)
    }
}

/// A schedule's result as a supervised child's or a cleanup's: a schedule
/// that ended because it was stopped ended cleanly (its stats are dropped),
/// and one whose run failed with [`OnError::Stop`] failed.
impl CleanupOutput for Result<PeriodicStats, PeriodicError> {
    fn into_cleanup_result(self) -> Result<(), TaskError> {
        self.map(drop).into_cleanup_result()
    }
}

/// A schedule: a body run once per period, with policies for overlapping
/// runs, missed ticks, per-run timeouts and failures.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tethered::{Overlap, Periodic, Scope};
///
/// Scope::run(async |scope| {
///     let cleaner = Periodic::every(Duration::from_secs(5)).overlap(Overlap::Skip);
///     let stats = cleaner.stats();
///     scope.spawn_named("cleaner", cleaner.run(|| async {
///         // A run that takes 12s: two ticks are skipped while it goes.
///         tokio::time::sleep(Duration::from_secs(12)).await;
///     }));
///     tokio::time::sleep(Duration::from_secs(31)).await;
///     let seen = stats.get();
///     assert_eq!((seen.ticks, seen.started, seen.skipped), (7, 3, 4));
///     assert_eq!(seen.max_concurrent, 1);
///     scope.stop("done");
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a schedule does nothing until `run` is awaited"]
pub struct Periodic {
    every: Duration,
    overlap: Overlap,
    missed: Missed,
    first_after: bool,
    jitter: Option<(Duration, u64)>,
    timeout: Option<Duration>,
    on_error: OnError,
    on_stop: OnStop,
    name: Option<Cow<'static, str>>,
    stats: PeriodicStatsHandle,
}

impl Periodic {
    /// A schedule with one tick every `period`: the first at once, overlap
    /// [`Overlap::Skip`], missed ticks [`Missed::Skip`], failures
    /// [`OnError::Continue`], no jitter, no per-run timeout.
    ///
    /// A period under [`MIN_PERIOD`] (1 ms) is taken as 1 ms: tokio's timer
    /// fires at most once a millisecond, and ticks due faster than that
    /// would keep a worker busy without end. A zero period is a mistake:
    /// the schedule ends at once with [`PeriodicError::ZeroPeriod`] (the
    /// `#[periodic]` macro rejects both at compile time).
    pub fn every(period: Duration) -> Self {
        Periodic {
            every: period,
            overlap: Overlap::Skip,
            missed: Missed::Skip,
            first_after: false,
            jitter: None,
            timeout: None,
            on_error: OnError::Continue,
            on_stop: OnStop::End,
            name: None,
            stats: PeriodicStatsHandle::default(),
        }
    }

    /// What happens when a tick arrives while a run is still going.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// What happens to ticks missed while the executor was busy.
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }

    /// Starts with the first tick one period in, instead of at once.
    pub fn first_after(mut self) -> Self {
        self.first_after = true;
        self
    }

    /// Delays each tick by a uniform random amount in `[0, max]` (clamped
    /// below the period), drawn from a generator seeded with `seed`: the same
    /// seed gives the same ticks.
    pub fn jitter(mut self, max: Duration, seed: u64) -> Self {
        let below_period = self.every.saturating_sub(Duration::from_nanos(1));
        self.jitter = Some((max.min(below_period), seed));
        self
    }

    /// Cancels a run (reason [`CancelKind::Timeout`]) that takes longer than
    /// `limit`. A limit too long to add to an instant (`Duration::MAX`)
    /// never passes.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// What a failed run does to the schedule.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// What a stop request does to the schedule: end it (the default), or
    /// nothing, so that only a cancellation ends it.
    pub fn on_stop(mut self, on_stop: OnStop) -> Self {
        self.on_stop = on_stop;
        self
    }

    /// Names the schedule's scope and its runs (which share the name: see
    /// [`current_tick`](Self::current_tick) for which tick a run is).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A live view of the schedule's counts, to read while it runs.
    pub fn stats(&self) -> PeriodicStatsHandle {
        self.stats.clone()
    }

    /// The number of the tick whose run is calling, counted from 0 at the
    /// first tick, skipped and missed ticks included: tick `k` was due at
    /// `start + k·period` (plus its jitter). Call it from the run's future:
    /// it is `None` outside a periodic run, in the closure that makes the
    /// run (which is called before the run starts), and in tasks a run
    /// spawns (each is a task of its own).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use tethered::{Periodic, Scope};
    ///
    /// assert_eq!(Periodic::current_tick(), None);
    /// Scope::run(async |scope| {
    ///     let schedule = scope.spawn(Periodic::every(Duration::from_secs(1)).run(|| async {
    ///         let tick = Periodic::current_tick().unwrap();
    ///         println!("run of tick {tick}");
    ///     }));
    ///     tokio::time::sleep(Duration::from_millis(2_500)).await; // ticks 0, 1 and 2
    ///     schedule.stop("enough");
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn current_tick() -> Option<u64> {
        RUN_TICK.try_with(|tick| *tick).ok()
    }

    /// Runs the schedule until it is stopped (returns the final counts),
    /// a run fails with [`OnError::Stop`], or it is cancelled (the future is
    /// dropped at its next `.await`, and its runs are cancelled with it).
    ///
    /// `body` makes each run's future; a run returns `()` or `Result<(), E>`.
    /// The returned [`PeriodicRun`] is the schedule's future; its
    /// [`stats`](PeriodicRun::stats) can be read while it runs.
    #[track_caller]
    pub fn run<F, Fut>(
        self,
        body: F,
    ) -> PeriodicRun<impl Future<Output = Result<PeriodicStats, PeriodicError>>>
    where
        F: FnMut() -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutput,
    {
        let location = Location::caller();
        let name = self.name.clone().unwrap_or(Cow::Borrowed("periodic"));
        let stats = self.stats.clone();
        let schedule = async move {
            if self.every.is_zero() {
                return Err(PeriodicError::ZeroPeriod);
            }
            let stats = self.stats.clone();
            let ended = ScopeBuilder::new()
                .name(name.clone())
                .run_at(
                    location,
                    async move |scope: &Scope| {
                        Ticker::new(self, name, location, scope).run(body).await
                    },
                    |_| None,
                )
                .await;
            match ended.into_result() {
                Ok(Ok(())) => Ok(stats.get()),
                Ok(Err((tick, failure))) => Err(PeriodicError::RunFailed {
                    tick,
                    failure,
                    stats: stats.get(),
                }),
                Err(error) => Err(PeriodicError::Scope(error)),
            }
        };
        PeriodicRun { schedule, stats }
    }
}

tokio::task_local! {
    /// The tick of the run this task is, for [`Periodic::current_tick`]: a
    /// number rather than a run name to parse, and no string per run.
    static RUN_TICK: u64;
}

pin_project! {
    /// A running schedule: the future returned by [`Periodic::run`] (and by
    /// `#[periodic]` fns). Await it, or spawn it; read its counts meanwhile
    /// with [`stats`](Self::stats).
    #[must_use = "a schedule does nothing until it is awaited or spawned"]
    pub struct PeriodicRun<F> {
        #[pin]
        schedule: F,
        stats: PeriodicStatsHandle,
    }
}

/// A [`PeriodicRun`] whose future is boxed: a `'static`, nameable type, as
/// returned by `#[periodic]` fns.
pub type PeriodicTask = PeriodicRun<
    Pin<Box<dyn Future<Output = Result<PeriodicStats, PeriodicError>> + Send + 'static>>,
>;

impl<F> PeriodicRun<F> {
    /// A live view of the schedule's counts.
    pub fn stats(&self) -> PeriodicStatsHandle {
        self.stats.clone()
    }

    /// The same schedule with its future boxed, as a [`PeriodicTask`].
    pub fn boxed(self) -> PeriodicTask
    where
        F: Future<Output = Result<PeriodicStats, PeriodicError>> + Send + 'static,
    {
        PeriodicRun {
            schedule: Box::pin(self.schedule),
            stats: self.stats,
        }
    }
}

impl<F: Future> Future for PeriodicRun<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().schedule.poll(cx)
    }
}

impl<F> fmt::Debug for PeriodicRun<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicRun")
            .field("stats", &self.stats.get())
            .finish_non_exhaustive()
    }
}

/// What the runs share with the scheduling loop: how many are going, and a
/// way to wake the loop, used only when it waits for a run to end. A run
/// counts itself as it ends, so the loop wakes once a tick, not twice.
struct Runs {
    /// The schedule's counts, here so that a run's end reaches both through
    /// one `Arc`.
    stats: PeriodicStatsHandle,
    running: AtomicUsize,
    /// Set while the loop waits for runs to end (a queued tick, a drain).
    waiting: AtomicBool,
    wake: Notify,
    /// The failure that stops the schedule (`OnError::Stop`), if any.
    stopping: Mutex<Option<(u64, RunFailure)>>,
    /// The schedule's name and whether a failure stops it, for a failed
    /// run to log and act on: here rather than in every run's future.
    name: Cow<'static, str>,
    stop_on_error: bool,
    metrics: PeriodicMetrics,
}

impl Runs {
    fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// A run ended. The decrement and the `waiting` check are both SeqCst,
    /// as the loop's store of `waiting` and its read of `running` are: one
    /// of the two sides always sees the other, so no wake-up is lost.
    fn one_ended(&self, stops: bool) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        if stops || self.waiting.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    fn take_stopping(&self) -> Option<(u64, RunFailure)> {
        self.stopping
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

struct Active<'s> {
    tick: u64,
    handle: TaskHandle<'s, ()>,
    deadline: Option<Instant>,
}

/// The scheduling loop of one [`Periodic::run`], inside its scope.
struct Ticker<'s> {
    config: Periodic,
    /// Where `run` was called: where the runs are spawned, and where the
    /// reasons the schedule raises point.
    location: &'static Location<'static>,
    scope: &'s Scope,
    /// Handles of the runs started, for cancelling them (overlap, timeout);
    /// finished ones are pruned as the loop goes.
    active: Vec<Active<'s>>,
    /// The tick waiting for the running one to end ([`Overlap::Queue`]),
    /// and when it was due.
    queued: Option<(u64, Instant)>,
    runs: Arc<Runs>,
}

impl<'s> Ticker<'s> {
    fn new(
        config: Periodic,
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        scope: &'s Scope,
    ) -> Self {
        let stats = config.stats.clone();
        let stop_on_error = config.on_error == OnError::Stop;
        Ticker {
            runs: Arc::new(Runs {
                stats,
                running: AtomicUsize::new(0),
                waiting: AtomicBool::new(false),
                wake: Notify::new(),
                stopping: Mutex::new(None),
                // Labelled by the name given, not the default one.
                metrics: PeriodicMetrics::new(config.name.as_ref(), location),
                name,
                stop_on_error,
            }),
            config,
            location,
            scope,
            active: Vec::new(),
            queued: None,
        }
    }

    async fn run<F, Fut>(mut self, mut body: F) -> Result<(), (u64, RunFailure)>
    where
        F: FnMut() -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutput,
    {
        let jitter = self.config.jitter.map(|(max, seed)| Jitter::new(max, seed));
        let mut schedule = Schedule::new(
            Instant::now(),
            self.config.every.max(MIN_PERIOD),
            self.config.first_after,
            jitter,
            self.config.missed,
        );
        let runs = self.runs.clone();
        let mut stop = std::pin::pin!(crate::stop_requested());
        // One timer for the ticks and one for the run deadlines, reset when
        // their instant changes, rather than a fresh timer at every wake-up.
        let mut next_tick = std::pin::pin!(sleep_until(schedule.due()));
        let mut next_deadline = std::pin::pin!(sleep_until(schedule.due()));
        let mut armed_deadline = None;
        let ends_on_stop = self.config.on_stop == OnStop::End;
        loop {
            self.active.retain(|run| !run.handle.is_finished());
            let deadline = self.active.iter().filter_map(|run| run.deadline).min();
            if let Some(deadline) = deadline
                && armed_deadline != Some(deadline)
            {
                next_deadline.as_mut().reset(deadline);
                armed_deadline = Some(deadline);
            }
            // A run's end matters to the loop only when it may stop the
            // schedule or start the queued tick: otherwise no waiter is
            // registered (and removed) at every turn.
            let watch_ends = self.config.on_error == OnError::Stop || self.queued.is_some();
            tokio::select! {
                biased;
                _ = &mut stop, if ends_on_stop => {
                    self.drain().await;
                    return Ok(());
                }
                () = runs.wake.notified(), if watch_ends => {
                    if let Some(failure) = runs.take_stopping() {
                        self.drain().await;
                        return Err(failure);
                    }
                    if runs.running() == 0
                        && let Some((tick, due)) = self.queued.take()
                    {
                        runs.waiting.store(false, Ordering::SeqCst);
                        self.start(tick, due, Instant::now(), &mut body);
                    }
                }
                () = next_deadline.as_mut(), if deadline.is_some() => {
                    armed_deadline = None;
                    self.time_out(Instant::now());
                }
                () = next_tick.as_mut() => {
                    let tick = schedule.number();
                    let due = schedule.due();
                    let now = Instant::now();
                    let missed = schedule.advance(now);
                    next_tick.as_mut().reset(schedule.due());
                    let overran = runs.running() > 0;
                    self.config.stats.add(|c| &c.ticks, 1);
                    self.config.stats.add(|c| &c.missed, missed);
                    self.config.stats.add(|c| &c.overran, u64::from(overran));
                    runs.metrics.ticked(missed, overran);
                    self.tick(tick, due, now, &mut body).await;
                }
            }
        }
    }

    /// Waits for the runs still going (starting no new one, forgetting the
    /// queued one), still enforcing their timeouts, so that the final counts
    /// include them.
    async fn drain(&mut self) {
        self.queued = None;
        let runs = self.runs.clone();
        runs.waiting.store(true, Ordering::SeqCst);
        while runs.running() > 0 {
            self.active.retain(|run| !run.handle.is_finished());
            let deadline = self.active.iter().filter_map(|run| run.deadline).min();
            tokio::select! {
                () = runs.wake.notified() => {}
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.time_out(Instant::now());
                }
            }
        }
    }

    /// A tick due at `due` fired (at `now`): start a run, or apply the
    /// overlap policy.
    async fn tick<F, Fut>(&mut self, tick: u64, due: Instant, now: Instant, body: &mut F)
    where
        F: FnMut() -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutput,
    {
        let running = self.runs.running();
        match self.config.overlap {
            _ if running == 0 => self.start(tick, due, now, body),
            Overlap::Skip => self.skip(),
            Overlap::Concurrent(limit) if running < limit.get() => {
                self.start(tick, due, now, body);
            }
            Overlap::Concurrent(_) => self.skip(),
            Overlap::Queue if self.queued.is_none() => {
                self.queued = Some((tick, due));
                self.runs.waiting.store(true, Ordering::SeqCst);
                // The run may have ended between the two reads.
                if self.runs.running() == 0 {
                    self.queued = None;
                    self.runs.waiting.store(false, Ordering::SeqCst);
                    self.start(tick, due, now, body);
                }
            }
            Overlap::Queue => self.skip(),
            Overlap::Cancel => {
                for run in std::mem::take(&mut self.active) {
                    if run.handle.is_finished() {
                        continue;
                    }
                    let reason = CancelReason::raised_by(
                        CancelKind::Overlap,
                        self.location,
                        Some(self.runs.name.clone()),
                    )
                    .with_message(format!(
                        "tick {tick} arrived while the run of tick {} was still going",
                        run.tick
                    ));
                    // Counted by the run itself, as it ends.
                    let _ = run.handle.cancel_and_wait(reason).await;
                }
                // The wait took time: the run starts now, not at the tick.
                self.start(tick, due, Instant::now(), body);
            }
        }
    }

    fn skip(&self) {
        self.config.stats.add(|c| &c.skipped, 1);
        self.runs.metrics.skipped();
    }

    /// Starts the run of `tick`, due at `due`, at `now` (the caller has just
    /// read the clock: reading it again, per run, would be paid at every
    /// tick).
    fn start<F, Fut>(&mut self, tick: u64, due: Instant, now: Instant, body: &mut F)
    where
        F: FnMut() -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutput,
    {
        let run = CatchUnwind::new(body());
        // Counted before the task exists, so that its end cannot come first.
        let running = self.runs.running.fetch_add(1, Ordering::SeqCst) + 1;
        let finish = RunFinish {
            tick,
            timer: self.runs.metrics.run_started(due, now),
            runs: Some(self.runs.clone()),
        };
        let handle = self.scope.spawn_task_at(
            NodeKind::Task,
            // Named after the schedule. A `'static` name (a `#[periodic]`
            // fn's, a literal) is shared: a run costs no string of its own.
            // Its tick is `RUN_TICK`, set around it, for `current_tick`.
            Some(self.runs.name.clone()),
            RUN_TICK.scope(tick, RunTask { run, finish }),
            self.location,
            now,
        );
        let deadline = self.config.timeout.map(|limit| deadline::after(now, limit));
        self.active.push(Active {
            tick,
            handle,
            deadline,
        });
        self.config.stats.add(|c| &c.started, 1);
        // Read first: a new maximum is rare, and a plain load is cheaper
        // than a read-modify-write at every run.
        let max_concurrent = &self.config.stats.0.max_concurrent;
        if running as u64 > max_concurrent.load(Ordering::Relaxed) {
            max_concurrent.fetch_max(running as u64, Ordering::Relaxed);
        }
    }

    /// Cancels the runs whose deadline has passed.
    fn time_out(&mut self, now: Instant) {
        for run in &mut self.active {
            if run.deadline.is_some_and(|deadline| deadline <= now) {
                run.deadline = None;
                let limit = self.config.timeout.unwrap_or_default();
                run.handle.cancel(
                    CancelReason::raised_by(
                        CancelKind::Timeout,
                        self.location,
                        Some(self.runs.name.clone()),
                    )
                    .with_message(format!("the run of tick {} exceeded {limit:?}", run.tick)),
                );
            }
        }
    }
}

pin_project! {
    /// A run's task: the body's future, then its end counted. Written by
    /// hand rather than as an `async` block, which keeps what it captures
    /// apart from what it awaits: the body's future would take its room
    /// twice, and be copied twice as large into every run's task.
    struct RunTask<F> {
        #[pin]
        run: CatchUnwind<F>,
        finish: RunFinish,
    }
}

impl<F> Future for RunTask<F>
where
    F: Future,
    F::Output: RunOutput,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let end = match std::task::ready!(this.run.poll(cx)) {
            Ok(output) => output.into_run_result().map_err(RunFailure::Error),
            Err(payload) => Err(RunFailure::Panic(payload)),
        };
        this.finish.finished(end);
        Poll::Ready(())
    }
}

/// Counts how a run ended, as it ends: completed or failed when its future
/// returns, cancelled (by overlap, timeout, or with the schedule) when it is
/// dropped, since then only a destructor can speak, and the loop may be gone
/// already.
struct RunFinish {
    tick: u64,
    timer: RunTimer,
    /// `None` once counted.
    runs: Option<Arc<Runs>>,
}

impl RunFinish {
    fn finished(&mut self, end: Result<(), RunFailure>) {
        let Some(runs) = self.runs.take() else { return };
        let stops = match end {
            Ok(()) => {
                runs.stats.add(|c| &c.completed, 1);
                runs.metrics.run_ended(&self.timer, RunEnd::Completed);
                false
            }
            Err(failure) => {
                runs.stats.add(|c| &c.failed, 1);
                runs.metrics.run_ended(&self.timer, RunEnd::Failed);
                tracing::warn!(
                    target: "tethered::periodic",
                    schedule = &*runs.name,
                    tick = self.tick,
                    %failure,
                    "a periodic run failed",
                );
                if runs.stop_on_error {
                    let mut stopping = runs
                        .stopping
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    stopping.get_or_insert((self.tick, failure));
                }
                runs.stop_on_error
            }
        };
        runs.one_ended(stops);
    }
}

impl Drop for RunFinish {
    fn drop(&mut self) {
        let Some(runs) = self.runs.take() else { return };
        let end = match crate::current().cancel_reason().map(|reason| reason.kind()) {
            Some(CancelKind::Timeout) => RunEnd::TimedOut,
            Some(CancelKind::Overlap) => RunEnd::CancelledByOverlap,
            _ => RunEnd::Cancelled,
        };
        runs.stats.add(
            |c| match end {
                RunEnd::TimedOut => &c.timed_out,
                RunEnd::CancelledByOverlap => &c.cancelled_by_overlap,
                _ => &c.cancelled,
            },
            1,
        );
        runs.metrics.run_ended(&self.timer, end);
        runs.one_ended(false);
    }
}
