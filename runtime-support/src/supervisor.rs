//! [`Supervisor`]: a long-lived scope where a child's failure is logged,
//! counted and maybe restarted, never the end of its siblings.
//!
//! A supervisor owns three kinds of children:
//!
//! * **static children** ([`ChildSpec`]): named factories restarted by their
//!   [`Restart`] policy, after a [`Backoff`], under a [`Strategy`], within an
//!   intensity limit past which the supervisor itself fails (as in OTP);
//! * **dynamic children** ([`Supervisor::spawn`]): sporadic work (requests,
//!   jobs), never restarted, forgotten as soon as they end, so memory follows
//!   the children alive, not the children ever run;
//! * **shields** ([`Supervisor::shield`]): work that cancellation does not
//!   reach and that shutdown waits for.
//!
//! # Shutdown
//!
//! [`Supervisor::shutdown`] (from anywhere), the body returning, a stop or
//! cancellation from an enclosing scope, or the intensity limit all lead to
//! the same phases, run once, in a task of their own:
//!
//! 1. **the rest first**: no new children; the body, the dynamic children
//!    and the shields are asked to stop and given `grace`; those still
//!    running are then cancelled (shields are only ever asked to stop);
//! 2. **the static children**, last declared first, one at a time, each
//!    within its own [`ChildShutdown`] budget (by default `grace`): asked to
//!    stop, then cancelled when its time is up (OTP's `shutdown`);
//! 3. **report**: a [`ShutdownReport`] says how each child ended; a child
//!    still running is a straggler, reported rather than waited for forever.
//!
//! Cancelled children are waited for out of one `cancel_timeout`, shared by
//! the whole shutdown. The whole is bounded by
//! [`Supervisor::shutdown_budget`].
//!
//! A straggler stays tethered: the supervisor stays in [`crate::tree()`],
//! under its parent, which does not end before it.

mod child;
mod error;
mod restarts;
mod shutdown;
mod spec;
mod stats;

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{SetOnce, mpsc};

pub use child::{ChildExit, ChildHandle, ChildOutput};
pub use error::{Supervised, SupervisorError, SupervisorErrorKind};
pub use shutdown::{ChildEnd, ChildReport, ChildRole, ShutdownReport};
pub use spec::{Backoff, ChildShutdown, ChildSpec, Restart, Strategy};
pub use stats::SupervisorStats;

use crate::budget::{self, Allowance};
use crate::error::{SpawnError, TaskFailure};
use crate::metrics::SupervisorMetrics;
use crate::node::sync::Arc as NodeArc;
use crate::node::{Guarded, Node, NodeKind, Settled};
use crate::reason::{CancelKind, CancelReason, IntoCancelReason};
use crate::stop::StopSignal;
use child::{Role, spawn_supervised};
use restarts::{Event, Manager};
use stats::Counters;

/// How long shutdown lets children finish after asking them to stop, when
/// no `grace` is given.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown waits for cancelled children, when no
/// `cancel_timeout` is given.
pub const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many restarts a supervisor allows within [`DEFAULT_INTENSITY_WINDOW`]
/// when no `intensity` is given.
pub const DEFAULT_INTENSITY: u32 = 5;

/// The window of the default intensity limit.
pub const DEFAULT_INTENSITY_WINDOW: Duration = Duration::from_secs(10);

/// A running supervisor: spawn children into it, read its counts, shut it
/// down. Cheap to clone, and `'static`: hand it to the tasks that need it
/// (a listener spawning one child per connection, a signal handler).
///
/// A supervisor is started with [`Supervisor::builder`] (or the
/// `supervise!` macro) and lives as long as its `run` future. It needs a
/// tokio runtime with the time driver enabled (`#[tokio::main]` and
/// `#[tethered::main]` enable it): backoff and shutdown are timed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use tethered::{ChildSpec, Restart, Supervisor};
///
/// let supervised = Supervisor::builder()
///     .name("service")
///     .child(ChildSpec::new("heartbeat", || async {
///         tethered::stop_requested().await;
///     }))
///     .run(async |sv| {
///         for n in 0..3 {
///             sv.spawn(format!("job-{n}"), async move {
///                 if n == 1 {
///                     return Err("job 1 failed");
///                 }
///                 Ok(())
///             })
///             .unwrap();
///         }
///         tokio::task::yield_now().await;
///         sv.stats()
///     })
///     .await
///     .unwrap();
/// let stats = supervised.value.unwrap();
/// assert_eq!((stats.completed, stats.failed), (2, 1)); // the failure cancelled no one
/// assert!(supervised.report.stragglers().next().is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

/// Configures a supervisor and its static children, then runs it.
///
/// Defaults: [`Strategy::OneForOne`], [`DEFAULT_INTENSITY`] restarts within
/// [`DEFAULT_INTENSITY_WINDOW`], [`DEFAULT_GRACE`], [`DEFAULT_CANCEL_TIMEOUT`],
/// jitter seed 0.
#[must_use = "a builder does nothing until `run` is called"]
pub struct SupervisorBuilder<'a> {
    name: Cow<'static, str>,
    strategy: Strategy,
    intensity: (u32, Duration),
    grace: Duration,
    cancel_timeout: Duration,
    seed: u64,
    children: Vec<ChildSpec<'a>>,
}

impl Default for SupervisorBuilder<'_> {
    fn default() -> Self {
        SupervisorBuilder {
            name: Cow::Borrowed("supervisor"),
            strategy: Strategy::default(),
            intensity: (DEFAULT_INTENSITY, DEFAULT_INTENSITY_WINDOW),
            grace: DEFAULT_GRACE,
            cancel_timeout: DEFAULT_CANCEL_TIMEOUT,
            seed: 0,
            children: Vec::new(),
        }
    }
}

impl<'a> SupervisorBuilder<'a> {
    /// Names the supervisor (default `"supervisor"`): in logs, reasons,
    /// errors and [`crate::tree()`].
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Which static children restart together.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Fails the supervisor when its static children need more than
    /// `max_restarts` restarts within `within` (OTP's intensity and period).
    /// With 0, the first restart a child needs fails the supervisor.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = (max_restarts, within);
        self
    }

    /// How long shutdown lets children finish after asking them to stop.
    /// `Duration::MAX` waits as long as it takes.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long shutdown waits for cancelled children before reporting them
    /// as stragglers. `Duration::MAX` waits as long as it takes.
    pub fn cancel_timeout(mut self, timeout: Duration) -> Self {
        self.cancel_timeout = timeout;
        self
    }

    /// Seeds the backoff jitter, so that a run can be replayed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a static child. Children start in the order they are added.
    pub fn child(mut self, child: ChildSpec<'a>) -> Self {
        self.children.push(child);
        self
    }

    /// The longest the supervisor's shutdown can take; see
    /// [`Supervisor::shutdown_budget`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tethered::{ChildShutdown, ChildSpec, Supervisor};
    ///
    /// # async fn worker() {}
    /// let builder = Supervisor::builder()
    ///     .grace(Duration::from_secs(5))
    ///     .cancel_timeout(Duration::from_secs(10))
    ///     .child(ChildSpec::new("db", worker).shutdown(ChildShutdown::Timeout(Duration::from_secs(2))))
    ///     .child(ChildSpec::new("cache", worker).shutdown(ChildShutdown::Brutal))
    ///     .child(ChildSpec::new("api", worker)); // the grace: 5 s
    /// // 5 s of grace, then 2 + 0 + 5 s for the static children, then 10 s.
    /// assert_eq!(builder.shutdown_budget(), Some(Duration::from_secs(22)));
    /// ```
    pub fn shutdown_budget(&self) -> Option<Duration> {
        let statics: Option<Vec<Duration>> = self
            .children
            .iter()
            .map(|child| ChildShutdown::or_grace(child.shutdown, self.grace).budget())
            .collect();
        Some(total_budget(self.grace, statics?, self.cancel_timeout))
    }

    /// Runs the supervisor: starts the static children, runs `body` with the
    /// [`Supervisor`], and shuts down (see the module docs) when the body
    /// returns, when [`Supervisor::shutdown`] is called, when an enclosing
    /// scope stops or cancels it, or when the intensity limit is passed.
    ///
    /// Returns the body's value (if it produced one before the shutdown)
    /// and the [`ShutdownReport`]; or a [`SupervisorError`] when the
    /// intensity limit was passed or the body panicked.
    ///
    /// If this future is dropped (its task was cancelled), the shutdown
    /// still runs, in a task of its own, and the enclosing scope waits for
    /// it.
    #[track_caller]
    pub fn run<F, T>(
        self,
        body: F,
    ) -> impl Future<Output = Result<Supervised<T>, SupervisorError>> + use<'a, F, T>
    where
        F: AsyncFnOnce(&Supervisor) -> T,
    {
        // The future of `drive` itself: an `async` block awaiting it would
        // keep the body twice.
        self.drive(Location::caller(), body)
    }

    async fn drive<F, T>(
        self,
        location: &'static Location<'static>,
        body: F,
    ) -> Result<Supervised<T>, SupervisorError>
    where
        F: AsyncFnOnce(&Supervisor) -> T,
    {
        // Said here, at once, rather than by whichever of tokio's functions
        // is called first, or by a shutdown that could not start.
        if tokio::runtime::Handle::try_current().is_err() {
            panic!(
                "supervisor `{}` polled outside a tokio runtime: its children are tokio tasks \
                 and its shutdown is timed; poll it inside a tokio runtime with the time driver",
                self.name
            );
        }
        let node = Node::new(
            NodeKind::Supervisor,
            Some(self.name.clone()),
            location,
            tokio::time::Instant::now(),
            crate::node::current(),
        );
        // Under the span of the task that runs the supervisor; its children
        // (and its shutdown) under this one.
        let span = tracing::debug_span!(
            target: "tethered::supervisor",
            "supervisor",
            name = node.name(),
            location = %location,
        );
        let span = (!span.is_disabled()).then(|| {
            node.set_span(span.clone());
            Box::new(span)
        });
        let (events, received) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            node: node.clone(),
            grace: self.grace,
            cancel_timeout: self.cancel_timeout,
            counters: Counters::default(),
            metrics: SupervisorMetrics::new(Some(&self.name), location),
            events,
            state: Mutex::new(State::default()),
            recording: AtomicBool::new(false),
            report: SetOnce::new(),
        });
        let supervisor = Supervisor {
            shared: shared.clone(),
        };
        // Declared first, so dropped last: if this future is dropped, the
        // body and the manager are gone before the shutdown is handed off.
        let mut hand_off = HandOff(Some(shared.clone()));
        let mut manager = Manager::new(
            shared.clone(),
            self.strategy,
            self.intensity,
            self.seed,
            self.children,
            received,
        );
        shared.check_budget();
        // What the body and the dynamic children get to shut down in: a
        // supervisor nested in them checks its own budget against it.
        let _allowed = budget::allow(
            &node,
            Allowance {
                budget: Some(self.grace.saturating_add(self.cancel_timeout)),
                giver: format!(
                    "supervisor `{}` (grace {:?} + cancel timeout {:?})",
                    self.name, self.grace, self.cancel_timeout
                ),
                from_main: false,
            },
        );
        let mut body = pin!(Guarded::new(node.clone(), body(&supervisor)));
        let mut value = None;
        let mut failure = None;
        let mut body_done = false;
        let mut settle =
            |settled: Settled<T>, failure: &mut Option<SupervisorErrorKind>| match settled {
                Settled::Completed(output) => value = Some(output),
                // The first failure is the supervisor's: a body panicking
                // during the shutdown that the intensity limit started does
                // not replace it.
                Settled::Panicked(payload) => {
                    failure.get_or_insert(SupervisorErrorKind::BodyPanicked(payload));
                }
                Settled::Cancelled => {}
            };

        // Running: until something asks for the shutdown.
        let reason = {
            let mut managing = pin!(manager.run());
            poll_fn(|cx| {
                let _entered = span.as_deref().map(tracing::Span::enter);
                // The manager first: its first poll starts the static
                // children, which must be running before the body runs (a
                // body that returns or panics at once would otherwise shut
                // down a supervisor whose children never started).
                if let Poll::Ready(exceeded) = managing.as_mut().poll(cx) {
                    let reason = exceeded.reason(&node);
                    failure = Some(exceeded.into_kind());
                    return Poll::Ready(reason);
                }
                if let Poll::Ready(settled) = body.as_mut().poll(cx) {
                    body_done = true;
                    // What the children (and their cleanups) are told.
                    let message = match &settled {
                        Settled::Panicked(payload) => {
                            format!("the supervisor's body panicked: {payload}")
                        }
                        _ => "the supervisor's body returned".to_owned(),
                    };
                    settle(settled, &mut failure);
                    shared.body_ended();
                    // A body that returned because it was asked to stop
                    // (by `shutdown`, or from above) is not the reason.
                    if let Some(reason) = shared.requested().or_else(|| node.stop_reason()) {
                        return Poll::Ready(reason);
                    }
                    let reason =
                        CancelReason::raised_by(CancelKind::ScopeExit, location, node.name_cow());
                    return Poll::Ready(reason.with_message(message));
                }
                if let Some(reason) = shared.poll_requested(cx.waker()) {
                    return Poll::Ready(reason);
                }
                // A stop from an enclosing scope (or a signal in `main`).
                if let Some(reason) = node.poll_stop(cx.waker()) {
                    return Poll::Ready(reason);
                }
                Poll::Pending
            })
            .await
        };
        drop(manager);
        shared.begin_shutdown(reason);

        // Shutting down: the body may still be finishing; the report comes
        // from the shutdown task. Each of the two is polled until it is
        // ready, never after: a body that awaited the report goes on
        // running (and awaiting) after the report is in.
        let mut waiting = pin!(shared.report.wait());
        let mut report = None;
        let report = poll_fn(|cx| {
            let _entered = span.as_deref().map(tracing::Span::enter);
            if !body_done && let Poll::Ready(settled) = body.as_mut().poll(cx) {
                body_done = true;
                settle(settled, &mut failure);
                shared.body_ended();
            }
            if report.is_none()
                && let Poll::Ready(ready) = waiting.as_mut().poll(cx)
            {
                report = Some(ready.clone());
            }
            match &report {
                Some(report) if body_done => Poll::Ready(report.clone()),
                _ => Poll::Pending,
            }
        })
        .await;
        hand_off.0 = None;
        match failure {
            Some(kind) => Err(SupervisorError::new(kind, report)),
            None => Ok(Supervised { value, report }),
        }
    }
}

impl Supervisor {
    /// A builder for a supervisor.
    pub fn builder<'a>() -> SupervisorBuilder<'a> {
        SupervisorBuilder::default()
    }

    /// Starts `future` as a dynamic child: run once, never restarted. Its
    /// failure (`Err` or panic) is logged with the child's name and spawn
    /// location, and counted; it cancels no one. Once it ends, nothing of it
    /// is kept.
    ///
    /// Returns an error, dropping the future unpolled, once the supervisor
    /// has started shutting down.
    #[track_caller]
    pub fn spawn<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<ChildHandle, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: ChildOutput,
    {
        spawn_supervised(
            &self.shared,
            NodeKind::Task,
            Role::Dynamic,
            self.shared.metrics.dynamic(),
            name.into(),
            Location::caller(),
            future,
        )
    }

    /// Adds a restartable child while the supervisor runs, as if it had
    /// been declared last (OTP's `start_child`): it takes part in the
    /// strategy and the intensity limit like the others.
    ///
    /// Returns an error once the supervisor has started shutting down.
    pub fn spawn_with(&self, child: ChildSpec<'static>) -> Result<(), SpawnError> {
        if self.shared.is_shutting_down() {
            return Err(SpawnError::closed(self.shared.node.name()));
        }
        self.shared
            .events
            .send(Event::Adopt(child))
            .map_err(|_| SpawnError::closed(self.shared.node.name()))
    }

    /// Starts `future` as a shield: cancellation does not reach it (only a
    /// stop request does), and shutdown waits for it, reporting it if it
    /// outlives the shutdown's budget. For work that must not be cut in
    /// half, like flushing a buffer to disk.
    #[track_caller]
    pub fn shield<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<ChildHandle, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: ChildOutput,
    {
        spawn_supervised(
            &self.shared,
            NodeKind::Shield,
            Role::Shield,
            self.shared.metrics.shield(),
            name.into(),
            Location::caller(),
            future,
        )
    }

    /// The supervisor's counts so far.
    pub fn stats(&self) -> SupervisorStats {
        self.shared.counters.snapshot()
    }

    /// Shuts the supervisor down (see the module docs) and returns the
    /// report once it is done: within its
    /// [`shutdown_budget`](Self::shutdown_budget), whatever the children do. Callable from any task, any number of times: the first
    /// reason is kept and every caller gets the same report.
    ///
    /// The request is made when `shutdown` is called, not when the future
    /// is first polled: `drop(sv.shutdown(reason))` starts a shutdown
    /// without waiting for it. The future is `'static`, to hand to a task.
    ///
    /// The body can await it: the shutdown does not wait for a body that
    /// waits for the shutdown, and the body returns its value once the
    /// report is ready. A supervised child that awaits it is not waited for
    /// either: it is cancelled with the children still running after the
    /// grace period (or at once, when the others are done), so it does not
    /// see the report.
    #[track_caller]
    pub fn shutdown(&self, reason: impl IntoCancelReason) -> ShutdownFuture {
        let reason = reason.into_cancel_reason(Location::caller());
        self.shared.request(reason);
        let shared = self.shared.clone();
        let caller = crate::node::current().and_then(|node| shared.own_branch(&node));
        ShutdownFuture {
            waiting: Box::pin(async move {
                // Registered while this future is polled, and only then: a
                // caller that drops it is waited for again.
                let _waiting = caller.map(|id| Waiting::register(&shared, id));
                shared.report.wait().await.clone()
            }),
            report: None,
        }
    }

    /// The longest its shutdown can take, when every child uses all the
    /// time it is given: the grace (for the body, the dynamic children and
    /// the shields), each static child's shutdown budget (they stop one at
    /// a time), and the cancel timeout (shared by every cancelled child).
    /// `None` when a static child has [`ChildShutdown::Infinity`].
    ///
    /// A supervisor that starts inside a part of the tree given less than
    /// this (`#[tethered::main]`'s grace and cancel timeout, or a static
    /// child's budget in a supervisor above) says so at start, in a
    /// `tracing` warning (and on stderr, under `main`): past what it is
    /// given, its children would be cut short and its report lost.
    pub fn shutdown_budget(&self) -> Option<Duration> {
        self.shared.shutdown_budget()
    }

    /// An owned [`StopSignal`] of the supervisor's stop: it fires when the
    /// shutdown begins (whoever asked for it), for code that runs outside
    /// the supervisor's tasks, such as a server library's graceful-shutdown
    /// future.
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal::new(self.shared.node.clone())
    }

    /// Whether the supervisor has started shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        self.shared.node.name().unwrap_or("supervisor")
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.name())
            .field("stats", &self.stats())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

impl fmt::Debug for SupervisorBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("grace", &self.grace)
            .field("cancel_timeout", &self.cancel_timeout)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

/// What the supervisor's run future, its children, its handles and its
/// shutdown task share.
pub(crate) struct Shared {
    node: NodeArc<Node>,
    grace: Duration,
    cancel_timeout: Duration,
    counters: Counters,
    metrics: SupervisorMetrics,
    /// To the manager of static children: their ends, and specs to adopt.
    events: mpsc::UnboundedSender<Event>,
    state: Mutex<State>,
    /// Whether children record how they end (`State::ended`): from the start
    /// of the shutdown.
    recording: AtomicBool,
    report: SetOnce<ShutdownReport>,
}

#[derive(Default)]
struct State {
    /// Why shutdown was asked for; set once, the first reason wins.
    requested: Option<CancelReason>,
    /// The run future, waiting for a shutdown request.
    waiting: Option<Waker>,
    /// Whether the shutdown task was started.
    shutting_down: bool,
    /// Whether the body has ended (shutdown waits for it in its stop phase).
    body_done: bool,
    /// Each static child, by declaration index: its current start's node
    /// (none while it is not running) and its shutdown budget.
    statics: Vec<Static>,
    /// The body (the supervisor's own node id) and children (their ids)
    /// awaiting the shutdown's report.
    awaiting: Vec<usize>,
    /// While shutting down: how each child ended, and when, in the order
    /// they ended.
    ended: Option<Vec<shutdown::Ended>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_shutting_down(&self) -> bool {
        self.state().requested.is_some()
    }

    fn requested(&self) -> Option<CancelReason> {
        self.state().requested.clone()
    }

    /// The id of the supervisor's node when `node` is its body's, or of
    /// the supervisor's child that `node` is (or runs under).
    fn own_branch(&self, node: &NodeArc<Node>) -> Option<usize> {
        let supervisor = self.node.id();
        let mut current = node;
        loop {
            if current.id() == supervisor {
                return Some(supervisor);
            }
            let parent = current.parent()?;
            if parent.id() == supervisor {
                return Some(current.id());
            }
            current = parent;
        }
    }

    /// Records a shutdown request and wakes the run future, which starts
    /// the shutdown. The first reason wins.
    fn request(&self, reason: CancelReason) {
        let waiting = {
            let mut state = self.state();
            if state.requested.is_some() {
                return;
            }
            state.requested = Some(reason);
            state.waiting.take()
        };
        // No new children from here on.
        self.node.refuse_children();
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    fn poll_requested(&self, waker: &Waker) -> Option<CancelReason> {
        let mut state = self.state();
        if let Some(reason) = &state.requested {
            return Some(reason.clone());
        }
        match &state.waiting {
            Some(current) if current.will_wake(waker) => {}
            _ => state.waiting = Some(waker.clone()),
        }
        None
    }

    /// Starts the shutdown task, once. `reason` is used when no shutdown
    /// was requested before.
    fn begin_shutdown(self: &Arc<Self>, reason: CancelReason) {
        self.request(reason);
        let reason = {
            let mut state = self.state();
            if state.shutting_down {
                return;
            }
            state.shutting_down = true;
            state.ended = Some(Vec::new());
            self.recording.store(true, Ordering::Release);
            state
                .requested
                .clone()
                .unwrap_or_else(|| unreachable!("requested above"))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let span = self.node.span().unwrap_or_else(tracing::Span::none);
                runtime.spawn(tracing::Instrument::instrument(
                    shutdown::run(self.clone(), reason),
                    span,
                ));
            }
            Err(_) => {
                tracing::error!(
                    target: "tethered::supervisor",
                    supervisor = self.node.name(),
                    "supervisor dropped outside a tokio runtime; it cannot shut down its children",
                );
                self.node.finish();
            }
        }
    }

    /// Records a static child: its shutdown budget (its own, or the
    /// grace), and an account of its starts for the report.
    fn add_static(&self, spec: &ChildSpec<'_>) {
        let shutdown = ChildShutdown::or_grace(spec.shutdown, self.grace);
        self.state().statics.push(Static {
            node: None,
            shutdown,
            name: spec.name.clone(),
            location: spec.location,
            starts: 0,
            last_failure: None,
            next_start: None,
        });
    }

    /// See [`Supervisor::shutdown_budget`].
    fn shutdown_budget(&self) -> Option<Duration> {
        let statics: Option<Vec<Duration>> = self
            .state()
            .statics
            .iter()
            .map(|child| child.shutdown.budget())
            .collect();
        Some(total_budget(self.grace, statics?, self.cancel_timeout))
    }

    /// Says so when this supervisor's shutdown may take longer than what
    /// is around it gives it (see [`budget`]).
    fn check_budget(&self) {
        let Some(allowance) = budget::allowance_above(&self.node) else {
            return;
        };
        let Some(allowed) = allowance.budget else {
            return;
        };
        let needed = self.shutdown_budget();
        if needed.is_some_and(|needed| needed <= allowed) {
            return;
        }
        let supervisor = self.node.name().unwrap_or("supervisor");
        let needed = budget::show(needed);
        let allowed = budget::show(Some(allowed));
        let giver = &allowance.giver;
        tracing::warn!(
            target: "tethered::supervisor",
            supervisor,
            needed,
            allowed,
            giver,
            "a supervisor's shutdown may take longer than it is given",
        );
        if allowance.from_main {
            eprintln!(
                "tethered: warning: supervisor `{supervisor}` may take up to {needed} to shut \
                 down, but {giver} gives it {allowed}: past that, its children are cut short \
                 and its report is lost; shorten its grace, cancel timeout or children's \
                 shutdowns, or lengthen main's"
            );
        }
    }

    fn body_ended(&self) {
        self.state().body_done = true;
        self.node.wake_watcher();
    }

    /// Counts, logs and (while shutting down) records how a child ended,
    /// and tells the manager when it was a static child.
    fn child_ended(&self, role: Role, exit: &ChildExit) {
        let counters = &self.counters;
        match exit {
            ChildExit::Completed => Counters::add(&counters.ends.completed),
            ChildExit::Failed(failure) => {
                if failure.panic().is_some() {
                    Counters::add(&counters.ends.panicked);
                } else {
                    Counters::add(&counters.ends.failed);
                }
                tracing::warn!(
                    target: "tethered::supervisor",
                    supervisor = self.node.name(),
                    child = failure.task(),
                    location = %failure.location(),
                    failure = %failure.summary(),
                    "supervised child failed",
                );
            }
            ChildExit::Cancelled(reason) => {
                Counters::add(&counters.ends.cancelled);
                let child = crate::node::current();
                tracing::debug!(
                    target: "tethered::supervisor",
                    supervisor = self.node.name(),
                    child = child.as_ref().and_then(|node| node.name()),
                    reason = %reason,
                    "supervised child cancelled",
                );
            }
        }
        // Checked without the lock: a dynamic child's end, the hot path,
        // takes no lock shared with its siblings while the supervisor runs.
        if self.recording.load(Ordering::Acquire) {
            let mut state = self.state();
            // Only a child's own end, which runs as the child. A spawn
            // refused during the shutdown drops its future (and counts it)
            // in the caller: recorded under the caller's node, it would show
            // up in the report as a child named after the caller (the
            // supervisor itself, when the body spawned).
            let node = crate::node::current().filter(|node| {
                node.parent()
                    .is_some_and(|parent| parent.id() == self.node.id())
            });
            if let (Some(ended), Some(node)) = (state.ended.as_mut(), node) {
                ended.push(shutdown::Ended::new(&node, role, exit.clone()));
            }
        }
        if let Role::Static { index, generation } = role {
            // The manager is gone once shutdown has begun; nothing to tell.
            let _ = self.events.send(Event::Exited {
                index: index as usize,
                generation,
                exit: exit.clone(),
            });
        }
    }
}

/// A supervisor's shutdown budget: `grace`, each static child's budget in
/// turn, then `cancel_timeout` (saturating).
fn total_budget(grace: Duration, statics: Vec<Duration>, cancel_timeout: Duration) -> Duration {
    statics
        .into_iter()
        .fold(grace, Duration::saturating_add)
        .saturating_add(cancel_timeout)
}

/// A static child, as the shutdown and its report see it.
pub(crate) struct Static {
    pub(crate) node: Option<NodeArc<Node>>,
    /// Its `shutdown`, the supervisor's grace when it has none.
    pub(crate) shutdown: ChildShutdown,
    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    /// How many times it was started.
    pub(crate) starts: u64,
    /// How its latest failed start failed.
    pub(crate) last_failure: Option<TaskFailure>,
    /// When its next start is due, while it waits out its backoff.
    pub(crate) next_start: Option<tokio::time::Instant>,
}

/// The future returned by [`Supervisor::shutdown`]: resolves to the
/// [`ShutdownReport`] once the shutdown is done. Polled again after that
/// (by `select!` in a loop, say), it gives the same report again.
#[must_use = "the shutdown is already requested; await this to get the report"]
pub struct ShutdownFuture {
    waiting: Pin<Box<dyn Future<Output = ShutdownReport> + Send>>,
    /// The report, once `waiting` has given it: `waiting` is not polled
    /// again.
    report: Option<ShutdownReport>,
}

impl Future for ShutdownFuture {
    type Output = ShutdownReport;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownReport> {
        if let Some(report) = &self.report {
            return Poll::Ready(report.clone());
        }
        let report = std::task::ready!(self.waiting.as_mut().poll(cx));
        self.report = Some(report.clone());
        Poll::Ready(report)
    }
}

impl fmt::Debug for ShutdownFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownFuture").finish_non_exhaustive()
    }
}

/// Marks the body, or a child of the supervisor, as waiting for the
/// shutdown to end: the shutdown must not wait for it in turn.
struct Waiting {
    shared: Arc<Shared>,
    id: usize,
}

impl Waiting {
    fn register(shared: &Arc<Shared>, id: usize) -> Self {
        shared.state().awaiting.push(id);
        // The stop phase may be waiting for this very caller.
        shared.node.wake_watcher();
        Waiting {
            shared: shared.clone(),
            id,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if let Some(at) = state.awaiting.iter().position(|&id| id == self.id) {
            state.awaiting.swap_remove(at);
        }
    }
}

/// Hands the shutdown to a task of its own when the supervisor's run future
/// is dropped before it finished: the children are stopped, then cancelled,
/// as they would have been, and the enclosing scope waits for them.
struct HandOff(Option<Arc<Shared>>);

impl Drop for HandOff {
    fn drop(&mut self) {
        let Some(shared) = self.0.take() else { return };
        let node = &shared.node;
        let reason = node.stop_reason().unwrap_or_else(|| {
            CancelReason::raised_by(CancelKind::Dropped, node.location(), node.name_cow())
        });
        shared.body_ended();
        shared.begin_shutdown(reason);
    }
}
