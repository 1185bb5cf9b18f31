//! [`Scope`]: a group of tasks that cannot outlive it.
//!
//! A scope runs a body; the body spawns children; the scope returns only when
//! every child has ended and every cleanup has run. The first child that
//! fails cancels the rest, and the scope reports every failure.
//!
//! # Lifecycle
//!
//! 1. **Body.** The body runs inline, in the caller's task, with the scope as
//!    the current node. If the scope is cancelled (a child failed, the
//!    timeout passed, `scope.cancel` was called, an ancestor was cancelled),
//!    the body's pending `.await` is interrupted: the body future is dropped.
//! 2. **Exit.** With [`OnExit::Cancel`] the children still running when the
//!    body returns are cancelled ([`CancelKind::ScopeExit`]).
//! 3. **Join.** The scope waits for every child (shields included).
//! 4. **Cleanup.** Deferred cleanups run, last registered first, each
//!    bounded by the cleanup timeout, in a task of their own so that nothing
//!    can interrupt them.
//!
//! # Drop
//!
//! If the scope's future is dropped before it finishes (its task was
//! cancelled, or user code dropped it in `select!` or `tokio::time::timeout`),
//! nothing can be awaited in `Drop`. The scope cancels its children (reason
//! [`CancelKind::Dropped`], or the ancestor's reason when an ancestor was
//! cancelled) and hands the rest of its work (joining them and running its
//! cleanups) to a task on the runtime. The scope stays registered under its
//! parent (the enclosing tethered task or scope) until that work is done, so
//! the parent does not complete before it. Only a scope with no tethered
//! task around it (run from a bare `tokio::spawn`) can leave that work
//! running after the code that dropped it has moved on; it stays visible in
//! [`crate::tree()`] until it is done.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::cleanup::{Cleanup, run_cleanups};
use crate::deadline;
use crate::error::{FailureKind, ScopeError, TaskError, TaskFailure};
use crate::local::{LocalScope, NonSend, SendBody, Sendable};
use crate::node::sync::Arc;
use crate::node::{FinishOnDrop, Guarded, Node, NodeKind, Settled, children_done};
use crate::reason::{CancelKind, CancelReason, IntoCancelReason};
use crate::scope_report::ScopeReport;
use crate::stop::StopSignal;
use crate::task::{Split, TaskHandle, spawn_child};

/// What a scope does with children still running when its body returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnExit {
    /// Wait for them (as a trio nursery or an asyncio `TaskGroup` does).
    #[default]
    Join,
    /// Cancel them with a [`ScopeExit`](CancelKind::ScopeExit) reason, then
    /// wait for them to end: helper tasks that live as long as the body.
    Cancel,
}

/// How long each cleanup may run when no `cleanup_timeout` is given.
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A group of child tasks that cannot outlive it.
///
/// A `Scope` is only ever seen by reference, inside the body given to
/// [`Scope::run`] or [`ScopeBuilder::run`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// let pages = Scope::run(async |scope| {
///     let handles: Vec<_> = (1..=3)
///         .map(|n| scope.spawn_named(format!("page-{n}"), async move { n * 100 }))
///         .collect();
///     let mut pages = Vec::new();
///     for handle in handles {
///         pages.push(handle.join().await.unwrap());
///     }
///     pages
/// })
/// .await
/// .unwrap();
/// assert_eq!(pages, [100, 200, 300]);
/// # }
/// ```
pub struct Scope {
    node: Arc<Node>,
    cleanups: Mutex<Vec<Cleanup>>,
    cleanup_timeout: Duration,
    /// Set once the scope has run to its end; a scope dropped before that
    /// hands its remaining work to the runtime.
    finished: bool,
}

/// Configures a scope before running it: name, exit behaviour, timeouts.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tethered::{OnExit, Scope};
///
/// let error = Scope::builder()
///     .name("fetch")
///     .timeout(Duration::from_secs(5))
///     .on_exit(OnExit::Cancel)
///     .run(async |scope| {
///         scope.spawn(tokio::time::sleep(Duration::from_secs(60)));
///         tokio::time::sleep(Duration::from_secs(60)).await;
///     })
///     .await
///     .unwrap_err();
/// assert!(error.is_timeout());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `run` is called"]
pub struct ScopeBuilder {
    name: Option<Cow<'static, str>>,
    on_exit: OnExit,
    timeout: Option<Duration>,
    cleanup_timeout: Option<Duration>,
    report: bool,
}

impl ScopeBuilder {
    /// A builder with the defaults: unnamed, [`OnExit::Join`], no timeout,
    /// [`DEFAULT_CLEANUP_TIMEOUT`].
    pub fn new() -> Self {
        ScopeBuilder::default()
    }

    /// Names the scope (shown in reasons, errors and [`crate::tree()`]).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// What to do with children still running when the body returns.
    pub fn on_exit(mut self, on_exit: OnExit) -> Self {
        self.on_exit = on_exit;
        self
    }

    /// Fails the scope with a [`Timeout`](CancelKind::Timeout) reason if it
    /// has not ended `timeout` after it started: the body is interrupted and
    /// the children are cancelled (shields keep running and are waited for).
    ///
    /// A zero timeout has already passed when the scope starts: the body is
    /// never polled and the scope fails with a timeout, as
    /// `tokio::time::timeout(Duration::ZERO, ..)` would. A timeout too long
    /// to add to an instant (`Duration::MAX`) never passes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long each deferred cleanup may run before it is dropped and
    /// reported as [`CleanupTimedOut`](crate::FailureKind::CleanupTimedOut).
    ///
    /// Once a cleanup's time is up it is not polled again, even if it was
    /// woken in that same instant. So a zero cleanup timeout gives each
    /// cleanup exactly one poll: it runs up to its first `.await` that has
    /// to wait (an `.await` on something already ready does not), and is
    /// dropped there.
    pub fn cleanup_timeout(mut self, timeout: Duration) -> Self {
        self.cleanup_timeout = Some(timeout);
        self
    }

    /// Has the scope keep a full account of its children's ends: the ones
    /// that completed too, not only those that failed or were cancelled
    /// (see [`ScopeReport`]). Each child then ends under the scope's lock,
    /// to record its end: a cost per child that a scope keeping no report
    /// does not pay.
    pub fn report(mut self) -> Self {
        self.report = true;
        self
    }

    /// Runs `body` in a new scope that keeps a full account of its
    /// children (as with [`report`](Self::report)), and returns, with the
    /// scope's result, the [`ScopeReport`] however the scope ended.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use tethered::Scope;
    ///
    /// let (result, report) = Scope::builder()
    ///     .name("warm-up")
    ///     .run_reported(async |scope| {
    ///         scope.spawn_named("cache", tokio::time::sleep(Duration::from_millis(30)));
    ///         scope.spawn_named("pool", tokio::time::sleep(Duration::from_millis(10)));
    ///     })
    ///     .await;
    /// assert!(result.is_ok());
    /// assert_eq!(report.completed(), 2);
    /// assert_eq!(report.child("cache").unwrap().ran_for(), Duration::from_millis(30));
    /// println!("{report}");
    /// # }
    /// ```
    #[track_caller]
    pub fn run_reported<F, T>(
        mut self,
        body: F,
    ) -> impl Future<Output = (Result<T, ScopeError>, ScopeReport)>
    where
        F: AsyncFnOnce(&Scope) -> T,
    {
        self.report = true;
        MapEnded::new(
            self.run_at(Location::caller(), body, |_| None),
            |ended| match ended {
                Ended::Clean(value, report) => {
                    let report = report.map(|report| *report);
                    (
                        Ok(value),
                        report.expect("a scope that keeps a report returns it"),
                    )
                }
                Ended::Failed { error, .. } => {
                    let report = error
                        .report()
                        .cloned()
                        .expect("a scope's error has its report");
                    (Err(error), report)
                }
            },
        )
    }

    /// Runs `body` in a new scope; see [`Scope::run`].
    #[track_caller]
    pub fn run<F, T>(self, body: F) -> impl Future<Output = Result<T, ScopeError>>
    where
        F: AsyncFnOnce(&Scope) -> T,
    {
        MapEnded::new(
            self.run_at(Location::caller(), body, |_| None),
            Ended::into_result,
        )
    }

    /// Runs `body` in a new scope that can hold local children (see
    /// [`LocalScope`]): children polled in the scope's own task, which may
    /// borrow what outlives the scope, and must be `Send`; the scope's
    /// future is `Send`. See [`Scope::run_local`].
    #[track_caller]
    pub fn run_local<'env, F, T>(self, body: F) -> impl Future<Output = Result<T, ScopeError>>
    where
        F: for<'s> FnOnce(&'s LocalScope<'env, Sendable>) -> SendBody<'s, T>,
    {
        MapEnded::new(
            self.run_local_at(Location::caller(), body, |_| None),
            Ended::into_result,
        )
    }

    /// [`run_local`](Self::run_local) for local children that may be
    /// `!Send`; the scope's future is then `!Send`. See
    /// [`Scope::run_local_non_send`].
    #[track_caller]
    pub fn run_local_non_send<'env, F, T>(
        self,
        body: F,
    ) -> impl Future<Output = Result<T, ScopeError>>
    where
        F: AsyncFnOnce(&LocalScope<'env, NonSend>) -> T,
    {
        MapEnded::new(
            self.run_at(Location::caller(), body, |_| None),
            Ended::into_result,
        )
    }

    /// Runs `body` in a new scope located at `location`, and returns both
    /// what the body produced (if it produced anything) and the scope's error
    /// (if any): the adapters behind `#[scoped]` need to see both. A body
    /// value that `body_failure` describes as a failure (a `#[scoped]` fn
    /// whose body returned `Err`) cancels the remaining children, with the
    /// description as the reason's message, so that they (and their
    /// cleanups) can see what went wrong.
    pub(crate) async fn run_at<S, F, T>(
        mut self,
        location: &'static Location<'static>,
        body: F,
        body_failure: impl FnOnce(&T) -> Option<String>,
    ) -> Ended<T>
    where
        S: Holder,
        F: AsyncFnOnce(&S) -> T,
    {
        let (scope, span) = self.open(location);
        let mut holder = S::hold(scope);
        // The scope is driven here rather than in a function of its own:
        // each `async fn` the body is handed through keeps a copy of it in
        // its future, and a scope's future is as large as the copies.
        let mut deadline = pin!(Deadline::new(self.timeout));
        let value = {
            let holder = &holder;
            let (scope, local) = holder.parts();
            let body = pin!(Guarded::new(scope.node.clone(), body(holder)));
            drive(span.as_deref(), deadline.as_mut(), scope, local, body).await
        };
        let (scope, local) = holder.parts_mut();
        scope
            .finish(value, self.on_exit, deadline, local, body_failure)
            .await
    }

    /// [`run_at`](Self::run_at) for a [`Sendable`] local scope: the body's
    /// future is boxed as a `dyn Future + Send` as soon as it is made, so
    /// that this future holds no type that names the body's closure
    /// through a trait (the compiler could not then tell this future is
    /// `Send` for a body that borrows: rust-lang/rust#110338).
    pub(crate) async fn run_local_at<'env, F, T>(
        mut self,
        location: &'static Location<'static>,
        body: F,
        body_failure: impl FnOnce(&T) -> Option<String>,
    ) -> Ended<T>
    where
        F: for<'s> FnOnce(&'s LocalScope<'env, Sendable>) -> SendBody<'s, T>,
    {
        let (scope, span) = self.open(location);
        let mut holder = LocalScope::<'env, Sendable>::hold(scope);
        let mut deadline = pin!(Deadline::new(self.timeout));
        let value = {
            let holder = &holder;
            let (scope, local) = holder.parts();
            let body = pin!(Guarded::new(scope.node.clone(), body(holder)));
            drive(span.as_deref(), deadline.as_mut(), scope, local, body).await
        };
        let (scope, local) = holder.parts_mut();
        scope
            .finish(value, self.on_exit, deadline, local, body_failure)
            .await
    }

    /// The scope's node (under the current one), its span, and the scope.
    fn open(
        &mut self,
        location: &'static Location<'static>,
    ) -> (Scope, Option<Box<tracing::Span>>) {
        let node = Node::new(
            NodeKind::Scope,
            self.name.take(),
            location,
            Instant::now(),
            crate::node::current(),
        );
        if self.report {
            node.keep_report();
        }
        // Under the span of the task that runs the scope; the scope's
        // children under this one.
        let span = tracing::debug_span!(
            target: "tethered::scope",
            "scope",
            name = node.name(),
            location = %location,
        );
        let span = (!span.is_disabled()).then(|| {
            node.set_span(span.clone());
            Box::new(span)
        });
        let scope = Scope {
            node,
            cleanups: Mutex::new(Vec::new()),
            cleanup_timeout: self.cleanup_timeout.unwrap_or(DEFAULT_CLEANUP_TIMEOUT),
            finished: false,
        };
        (scope, span)
    }
}

/// Polls a scope's body until it ends (or is cancelled), with the scope's
/// deadline and its local children.
async fn drive<Fut: Future>(
    span: Option<&tracing::Span>,
    mut deadline: Pin<&mut Deadline>,
    scope: &Scope,
    local: &impl PollLocal,
    mut body: Pin<&mut Guarded<Fut>>,
) -> Settled<Fut::Output> {
    // Armed while the body runs: if this future is dropped mid-body, the
    // scope is cancelled before the body is dropped, and the body's `Drop`
    // code can see why.
    let mut cancel_on_drop = CancelOnDrop(Some(&scope.node));
    let value = poll_fn(|cx| {
        let _entered = span.map(tracing::Span::enter);
        deadline.as_mut().poll_expired(cx, &scope.node);
        let polled = body.as_mut().poll(cx);
        // The body first: the children it spawned in this poll are polled
        // in the same one.
        if polled.is_pending() {
            local.poll_local(scope, cx);
        }
        polled
    })
    .await;
    cancel_on_drop.0 = None;
    value
}

/// What a scope's body is given: the [`Scope`] itself, or a
/// [`LocalScope`](crate::LocalScope), which holds local children beside it.
pub(crate) trait Holder {
    /// Its local children (none, for a plain scope).
    type Local: PollLocal;
    fn hold(scope: Scope) -> Self;
    /// The scope, and its local children.
    fn parts(&self) -> (&Scope, &Self::Local);
    fn parts_mut(&mut self) -> (&mut Scope, &Self::Local);
}

/// A scope's local children, polled whenever the scope's future is.
pub(crate) trait PollLocal {
    /// Polls the children of `scope` that were woken (or are new).
    fn poll_local(&self, scope: &Scope, cx: &mut Context<'_>);
}

/// A plain scope has no local children.
impl PollLocal for () {
    fn poll_local(&self, _scope: &Scope, _cx: &mut Context<'_>) {}
}

impl Holder for Scope {
    type Local = ();

    fn hold(scope: Scope) -> Self {
        scope
    }

    fn parts(&self) -> (&Scope, &()) {
        (self, &())
    }

    fn parts_mut(&mut self) -> (&mut Scope, &()) {
        (self, &())
    }
}

/// How a scope ended. A failed scope may still carry the body's value (the
/// body returned, then a child or a cleanup failed): the adapters behind
/// `#[scoped]` decide which of the two to hand on.
pub(crate) enum Ended<T> {
    /// With the scope's report, when it kept one.
    Clean(T, Option<Box<ScopeReport>>),
    Failed {
        value: Option<T>,
        error: ScopeError,
    },
}

impl<T> Ended<T> {
    /// The body's value when the scope ended cleanly, its error otherwise.
    pub(crate) fn into_result(self) -> Result<T, ScopeError> {
        match self {
            Ended::Clean(value, _) => Ok(value),
            Ended::Failed { error, .. } => Err(error),
        }
    }
}

pin_project_lite::pin_project! {
    /// A scope's future, its [`Ended`] turned into what the caller returns.
    ///
    /// A struct rather than an `async` block: a block awaiting the scope's
    /// future would keep it twice (as captured, and as awaited), and a
    /// scope's future holds its body.
    pub(crate) struct MapEnded<Fut, G> {
        #[pin]
        ended: Fut,
        map: Option<G>,
    }
}

impl<Fut, G> MapEnded<Fut, G> {
    pub(crate) fn new(ended: Fut, map: G) -> Self {
        MapEnded {
            ended,
            map: Some(map),
        }
    }
}

impl<Fut, G, T, O> Future for MapEnded<Fut, G>
where
    Fut: Future<Output = Ended<T>>,
    G: FnOnce(Ended<T>) -> O,
{
    type Output = O;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.project();
        let ended = std::task::ready!(this.ended.poll(cx));
        let map = this
            .map
            .take()
            .expect("a scope's future polled after it completed");
        Poll::Ready(map(ended))
    }
}

impl Scope {
    /// Runs `body` in a new scope, child of the current one, and returns its
    /// value once every child task has ended and every cleanup has run.
    ///
    /// Returns `Err(ScopeError)` when a child or cleanup failed (every
    /// failure is in it), when the scope's timeout passed, or when the scope
    /// was cancelled before the body produced its value. A panic in the body
    /// is caught like a child's and reported the same way.
    ///
    /// Must be polled inside a tokio runtime (children are tokio tasks).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::{CancelKind, Scope};
    ///
    /// let error = Scope::run(async |scope| {
    ///     scope.spawn_named("slow", std::future::pending::<()>());
    ///     scope.spawn_fallible_named("broken", async { Err::<(), _>("no route") });
    ///     std::future::pending::<()>().await // interrupted by the failure
    /// })
    /// .await
    /// .unwrap_err();
    /// assert_eq!(error.failures()[0].task(), Some("broken"));
    /// assert_eq!(error.reason().unwrap().kind(), CancelKind::SiblingFailed);
    /// # }
    /// ```
    #[track_caller]
    pub fn run<F, T>(body: F) -> impl Future<Output = Result<T, ScopeError>>
    where
        F: AsyncFnOnce(&Scope) -> T,
    {
        ScopeBuilder::new().run(body)
    }

    /// Runs `body` in a new scope that can hold local children: futures
    /// started with [`LocalScope::spawn_local`], polled by the scope's own
    /// task, which may borrow anything that outlives the scope (the
    /// caller's arguments, its locals) without an `Arc` or a clone. They
    /// must be `Send`, and the scope's future is `Send`: it runs anywhere
    /// a spawned task does. Spawned children mix freely with local ones;
    /// the scope joins both.
    ///
    /// The body is a closure that returns its future boxed,
    /// `|scope| Box::pin(async { … })`, rather than an async closure: with
    /// an async closure, today's compiler cannot tell that a future holding
    /// the scope is `Send` once the body borrows from its caller
    /// (rust-lang/rust#110338), which is where this scope is wanted (an
    /// `async fn` called from an axum handler or a spawned task). The
    /// `async` block is not `move`: it borrows what the caller owns, and
    /// the children borrow it in turn. (A [`NonSend`] scope's future is
    /// never checked for `Send`: [`run_local_non_send`](Self::run_local_non_send)
    /// takes an async closure.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// struct Index {
    ///     stop_words: Vec<&'static str>,
    /// }
    ///
    /// impl Index {
    ///     async fn count(&self, docs: &[&str]) -> usize {
    ///         Scope::run_local(|scope| Box::pin(async {
    ///             // Each child reads `self` and its document in place.
    ///             let handles: Vec<_> = docs
    ///                 .iter()
    ///                 .map(|doc| {
    ///                     scope.spawn_local(async move {
    ///                         doc.split(' ')
    ///                             .filter(|word| !self.stop_words.contains(word))
    ///                             .count()
    ///                     })
    ///                 })
    ///                 .collect();
    ///             let mut total = 0;
    ///             for handle in handles {
    ///                 total += handle.join().await.unwrap();
    ///             }
    ///             total
    ///         }))
    ///         .await
    ///         .unwrap()
    ///     }
    /// }
    ///
    /// let index = Index { stop_words: vec!["the", "a"] };
    /// // Its future is `Send`: it runs in a spawned task.
    /// let counted = tokio::spawn(async move { index.count(&["the cat", "a dog barks"]).await });
    /// assert_eq!(counted.await.unwrap(), 3);
    /// # }
    /// ```
    #[track_caller]
    pub fn run_local<'env, F, T>(body: F) -> impl Future<Output = Result<T, ScopeError>>
    where
        F: for<'s> FnOnce(&'s LocalScope<'env, Sendable>) -> SendBody<'s, T>,
    {
        ScopeBuilder::new().run_local(body)
    }

    /// [`run_local`](Self::run_local) for local children that may be
    /// `!Send` (`Rc`, `RefCell` borrows): the scope's future is then
    /// `!Send`, and runs on a current-thread runtime, in a `LocalSet` or on
    /// a `LocalRuntime`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::cell::Cell;
    /// use tethered::Scope;
    ///
    /// let hits = Cell::new(0);
    /// Scope::run_local_non_send(async |scope| {
    ///     for _ in 0..3 {
    ///         scope.spawn_local(async { hits.set(hits.get() + 1) });
    ///     }
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(hits.get(), 3);
    /// # }
    /// ```
    #[track_caller]
    pub fn run_local_non_send<'env, F, T>(body: F) -> impl Future<Output = Result<T, ScopeError>>
    where
        F: AsyncFnOnce(&LocalScope<'env, NonSend>) -> T,
    {
        ScopeBuilder::new().run_local_non_send(body)
    }

    /// A builder to name the scope or set its exit behaviour and timeouts.
    pub fn builder() -> ScopeBuilder {
        ScopeBuilder::new()
    }

    /// What follows the body: its value or failure recorded, the children
    /// joined, the cleanups run, and the scope's end.
    async fn finish<T>(
        &mut self,
        value: Settled<T>,
        on_exit: OnExit,
        mut deadline: Pin<&mut Deadline>,
        local: &impl PollLocal,
        body_failure: impl FnOnce(&T) -> Option<String>,
    ) -> Ended<T> {
        let value = match value {
            Settled::Completed(value) => Some(value),
            Settled::Cancelled => None,
            Settled::Panicked(payload) => {
                let failure = TaskFailure::new(
                    self.node.name(),
                    self.node.location(),
                    FailureKind::Panic(payload),
                );
                self.node.record_failure(failure, true);
                None
            }
        };
        if let Some(value) = &value {
            match body_failure(value) {
                Some(failure) => self.node.cancel(
                    raised_by(&self.node, CancelKind::ScopeExit).with_message(failure),
                    false,
                ),
                None if on_exit == OnExit::Cancel => self
                    .node
                    .cancel(raised_by(&self.node, CancelKind::ScopeExit), false),
                None => false,
            };
        }
        self.wait_children(deadline.as_mut(), local).await;
        let cleanups = self.take_cleanups();
        if !cleanups.is_empty() {
            run_cleanups(&self.node, cleanups, self.cleanup_timeout);
            self.wait_children(deadline.as_mut(), local).await;
        }
        self.finished = true;
        self.node.finish();

        let failures = self.node.take_failures();
        let report = self.report();
        match value {
            Some(value) if failures.is_empty() && !deadline.expired => {
                Ended::Clean(value, self.node.keeps_report().then(|| Box::new(report)))
            }
            value => Ended::Failed {
                value,
                error: ScopeError::new(
                    self.node.name_cow(),
                    self.node.location(),
                    self.node.reason(),
                    failures,
                )
                .with_report(report),
            },
        }
    }

    /// The account of the scope's children, as its report.
    fn report(&self) -> ScopeReport {
        report_of(&self.node)
    }

    /// Waits for every child, polling the local ones meanwhile (they run
    /// only when the scope polls them).
    async fn wait_children(&self, mut deadline: Pin<&mut Deadline>, local: &impl PollLocal) {
        poll_fn(|cx| {
            deadline.as_mut().poll_expired(cx, &self.node);
            local.poll_local(self, cx);
            if self.node.poll_children_done(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    fn take_cleanups(&self) -> Vec<Cleanup> {
        std::mem::take(&mut *self.cleanups.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn push_cleanup(&self, cleanup: Cleanup) {
        self.cleanups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cleanup);
    }

    /// Spawns `fut` as a child task and returns its handle.
    ///
    /// The task fails only by panicking; use
    /// [`spawn_fallible`](Self::spawn_fallible) for a future whose `Err`
    /// should fail the scope. Spawning into a cancelled scope yields a task
    /// that is cancelled at once and never polled.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> TaskHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task(NodeKind::Task, None, fut)
    }

    /// Spawns a named child task (the name appears in reasons, failures,
    /// tracing spans and [`crate::tree()`]).
    #[track_caller]
    pub fn spawn_named<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> TaskHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task(NodeKind::Task, Some(name.into()), fut)
    }

    /// Spawns a child task whose `Err` fails the scope: it cancels the
    /// siblings and the body, and appears in the scope's [`ScopeError`]. The
    /// handle's [`Outcome::Failed`](crate::Outcome::Failed) shares the error.
    #[track_caller]
    pub fn spawn_fallible<F, T, E>(&self, fut: F) -> TaskHandle<'_, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + fmt::Debug + Send + Sync + 'static,
    {
        self.spawn_fallible_task(NodeKind::Task, None, fut, TaskError::new::<E>)
    }

    /// [`spawn_fallible`](Self::spawn_fallible) with a name.
    #[track_caller]
    pub fn spawn_fallible_named<F, T, E>(
        &self,
        name: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> TaskHandle<'_, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + fmt::Debug + Send + Sync + 'static,
    {
        self.spawn_fallible_task(NodeKind::Task, Some(name.into()), fut, TaskError::new::<E>)
    }

    #[track_caller]
    pub(crate) fn spawn_task<F>(
        &self,
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        fut: F,
    ) -> TaskHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task_at(kind, name, fut, Location::caller(), Instant::now())
    }

    /// Spawns a task located at `location` and started at `started`: for
    /// tasks tethered starts on the user's behalf (a periodic run is located
    /// at the `run` call, and started when its tick fired).
    #[track_caller]
    pub(crate) fn spawn_task_at<F>(
        &self,
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        fut: F,
        location: &'static Location<'static>,
        started: Instant,
    ) -> TaskHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_child(
            &self.node,
            kind,
            name,
            location,
            started,
            fut,
            infallible(),
            false,
        )
        .unwrap_or_else(|| unreachable!("unchecked spawns always register"))
    }

    #[track_caller]
    pub(crate) fn spawn_fallible_task<F, T, E>(
        &self,
        kind: NodeKind,
        name: Option<Cow<'static, str>>,
        fut: F,
        erase: fn(std::sync::Arc<E>) -> TaskError,
    ) -> TaskHandle<'_, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + Sync + 'static,
    {
        spawn_child(
            &self.node,
            kind,
            name,
            Location::caller(),
            Instant::now(),
            fut,
            Split::new(|result| result, erase),
            false,
        )
        .unwrap_or_else(|| unreachable!("unchecked spawns always register"))
    }

    /// Cancels the scope: its children are cancelled, the body's pending
    /// `.await` is interrupted, and the scope ends without a failure of its
    /// own. If the body had already returned its value, the scope returns it;
    /// otherwise it returns a [`ScopeError`] whose
    /// [`is_cancelled`](ScopeError::is_cancelled) is true and which holds no
    /// failures. A cancellation that reached the scope from outside is never
    /// swallowed: it belongs to the ancestor, which ends too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// let first = Scope::run(async |scope| {
    ///     let (tx, mut rx) = tokio::sync::mpsc::channel(3);
    ///     for mirror in ["eu", "us", "ap"] {
    ///         let tx = tx.clone();
    ///         scope.spawn(async move { tx.send(mirror).await.ok() });
    ///     }
    ///     let first = rx.recv().await;
    ///     scope.cancel("have an answer");
    ///     first
    /// })
    /// .await
    /// .unwrap();
    /// assert!(first.is_some());
    /// # }
    /// ```
    #[track_caller]
    pub fn cancel(&self, reason: impl IntoCancelReason) {
        self.node
            .cancel(reason.into_cancel_reason(Location::caller()), false);
    }

    /// Asks the scope's children (and the body) to stop: a soft request,
    /// observed with [`crate::stop_requested`] and [`crate::is_stopping`].
    #[track_caller]
    pub fn stop(&self, reason: impl IntoCancelReason) {
        self.node
            .stop(reason.into_cancel_reason(Location::caller()));
    }

    /// Whether the scope has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// Whether the scope has been asked to stop (or cancelled).
    pub fn is_stopping(&self) -> bool {
        self.node.is_stopping()
    }

    /// Why the scope was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.node.reason()
    }

    /// The scope's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.node.name()
    }

    /// An owned [`StopSignal`] of this scope's stop, to move into code that
    /// runs outside the scope's tasks: a server library's graceful-shutdown
    /// future, a plain tokio task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// Scope::run(async |scope| {
    ///     let drained = tokio::spawn(scope.stop_signal().stopped());
    ///     scope.stop("deploy");
    ///     drained.await.unwrap();
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal::new(self.node.clone())
    }

    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// A `'static` handle to this scope, to spawn into it from its children.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// Scope::run(async |scope| {
    ///     let handle = scope.handle();
    ///     scope.spawn(async move {
    ///         // A child starts a sibling; the scope joins both.
    ///         handle.try_spawn(async { 7 }).expect("scope is open");
    ///     });
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn handle(&self) -> ScopeHandle {
        ScopeHandle {
            node: self.node.clone(),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The scope's future was dropped before the scope ended. Cancel what
        // is left (an ancestor's cancellation, if any, got there first and
        // its reason is kept) and let the runtime finish the job.
        cancel_dropped(&self.node);
        self.node.set_orphaned();
        let cleanups = self.take_cleanups();
        let node = self.node.clone();
        let cleanup_timeout = self.cleanup_timeout;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(finish_orphan(FinishOnDrop(node), cleanups, cleanup_timeout));
            }
            Err(_) => {
                // No runtime: nothing can run any more, children included.
                tracing::error!(
                    target: "tethered::scope",
                    scope = node.name(),
                    location = %node.location(),
                    cleanups = cleanups.len(),
                    "scope dropped outside a tokio runtime; its cleanups cannot run",
                );
                node.finish();
            }
        }
    }
}

/// A task that fails only by panicking: its whole output is its value.
///
/// The split is `Ok` itself, whose type takes no room: a `fn` pointer
/// would take 8 bytes in every such task.
pub(crate) fn infallible<O>()
-> Split<impl FnOnce(O) -> Result<O, std::convert::Infallible>, std::convert::Infallible> {
    Split::new(Ok, never_failed)
}

/// Shows the error of a task that cannot fail: there is none.
pub(crate) fn never_failed(never: std::sync::Arc<std::convert::Infallible>) -> TaskError {
    match *never {}
}

/// A reason the scope raises itself (its exit, its timeout, its being
/// dropped): located at the scope, and naming it whatever code runs it.
fn raised_by(node: &Node, kind: CancelKind) -> CancelReason {
    CancelReason::raised_by(kind, node.location(), node.name_cow())
}

/// Cancels a scope whose future is being dropped. The reason names the
/// code that dropped it (the current task), located at the scope.
fn cancel_dropped(node: &Node) {
    node.cancel(
        CancelReason::at(CancelKind::Dropped, node.location()),
        false,
    );
}

/// The account of `node`'s children, as a scope's report.
fn report_of(node: &Node) -> ScopeReport {
    node.take_account().into_report(
        node.name_cow(),
        node.location(),
        Instant::now().saturating_duration_since(node.started()),
        node.keeps_report(),
    )
}

/// Cancels the scope with a [`Dropped`](CancelKind::Dropped) reason when
/// dropped while armed.
struct CancelOnDrop<'a>(Option<&'a Node>);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(node) = self.0 {
            cancel_dropped(node);
        }
    }
}

/// The rest of a dropped scope's life: join its children, run its cleanups,
/// report its failures to the nearest enclosing scope, leave the tree (even
/// if the runtime drops this future at shutdown).
///
/// The guard is an argument, not a local: a future the runtime drops before
/// its first poll drops its arguments, but has no locals yet.
async fn finish_orphan(finish: FinishOnDrop, cleanups: Vec<Cleanup>, cleanup_timeout: Duration) {
    let node = &finish.0;
    children_done(node).await;
    if !cleanups.is_empty() {
        run_cleanups(node, cleanups, cleanup_timeout);
        children_done(node).await;
    }
    let failures = node.take_failures();
    if !failures.is_empty() {
        let error = ScopeError::new(node.name_cow(), node.location(), node.reason(), failures)
            .with_report(report_of(node));
        match node.parent().and_then(Node::enclosing_scope) {
            Some(scope) => scope.record_failure(
                TaskFailure::new(
                    node.name(),
                    node.location(),
                    FailureKind::Error(TaskError::new(std::sync::Arc::new(error))),
                ),
                true,
            ),
            None => tracing::error!(
                target: "tethered::scope",
                error = %error,
                "a dropped scope failed with no enclosing scope to report to",
            ),
        }
    }
}

/// The scope's optional deadline. Expiring cancels the scope with a
/// [`Timeout`](CancelKind::Timeout) reason, once.
struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    limit: Duration,
    expired: bool,
}

impl Deadline {
    fn new(timeout: Option<Duration>) -> Self {
        Deadline {
            sleep: timeout.map(|limit| {
                Box::pin(tokio::time::sleep_until(deadline::after(
                    Instant::now(),
                    limit,
                )))
            }),
            limit: timeout.unwrap_or_default(),
            expired: false,
        }
    }

    fn poll_expired(mut self: Pin<&mut Self>, cx: &mut Context<'_>, node: &Node) {
        let zero = self.limit.is_zero();
        let Some(sleep) = self.sleep.as_mut() else {
            return;
        };
        // A zero timeout has passed before the first poll; on a running clock
        // the timer wheel would only notice a millisecond later.
        if zero || sleep.as_mut().poll(cx).is_ready() {
            self.sleep = None;
            self.expired = true;
            let reason = raised_by(node, CancelKind::Timeout)
                .with_message(format!("scope exceeded its timeout of {:?}", self.limit));
            node.cancel(reason, false);
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.node.name())
            .field("location", &format_args!("{}", self.node.location()))
            .field("cancelled", &self.node.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// A `'static`, cloneable handle to a scope, for spawning into it from
/// anywhere (typically from one of its children).
///
/// Tasks spawned through a handle are still the scope's children: the scope
/// joins them, and their failures are its failures. A scope accepts new
/// children until it is *closing* (cancelled: a child failed, its timeout
/// passed, it or an ancestor was cancelled) or *closed* (its body returned
/// and every child has ended); then spawning returns a
/// [`SpawnError`](crate::SpawnError) and drops the future unpolled. While the
/// scope waits for its children, they can still spawn siblings through a
/// handle, as with a trio nursery.
#[derive(Clone)]
pub struct ScopeHandle {
    node: Arc<Node>,
}

impl ScopeHandle {
    /// Spawns `fut` into the scope, or returns an error if the scope is
    /// closed. See [`Scope::spawn`].
    #[track_caller]
    pub fn try_spawn<F>(&self, fut: F) -> Result<TaskHandle<'static, F::Output>, crate::SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.try_spawn_inner(None, fut)
    }

    /// [`try_spawn`](Self::try_spawn) with a name.
    #[track_caller]
    pub fn try_spawn_named<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> Result<TaskHandle<'static, F::Output>, crate::SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.try_spawn_inner(Some(name.into()), fut)
    }

    #[track_caller]
    fn try_spawn_inner<F>(
        &self,
        name: Option<Cow<'static, str>>,
        fut: F,
    ) -> Result<TaskHandle<'static, F::Output>, crate::SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_child(
            &self.node,
            NodeKind::Task,
            name,
            Location::caller(),
            Instant::now(),
            fut,
            infallible(),
            true,
        )
        .ok_or_else(|| crate::SpawnError::closed(self.node.name()))
    }

    /// Cancels the scope; see [`Scope::cancel`].
    #[track_caller]
    pub fn cancel(&self, reason: impl IntoCancelReason) {
        self.node
            .cancel(reason.into_cancel_reason(Location::caller()), false);
    }

    /// Asks the scope to stop; see [`Scope::stop`].
    #[track_caller]
    pub fn stop(&self, reason: impl IntoCancelReason) {
        self.node
            .stop(reason.into_cancel_reason(Location::caller()));
    }

    /// Whether the scope refuses new children (closing or closed).
    pub fn is_closed(&self) -> bool {
        self.node.is_closed()
    }

    /// Why the scope was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.node.reason()
    }

    /// An owned [`StopSignal`] of the scope's stop; see
    /// [`Scope::stop_signal`].
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal::new(self.node.clone())
    }
}

impl fmt::Debug for ScopeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeHandle")
            .field("name", &self.node.name())
            .field("closed", &self.node.is_closed())
            .finish()
    }
}
