//! Structured concurrency for tokio.
//!
//! Every task is tethered to a [`Scope`]; no task outlives the scope that
//! spawned it; every cancellation says who asked for it and why.
//!
//! * [`Scope::run`] runs a body that spawns children and returns only when
//!   all of them have ended. The first child that fails cancels its siblings,
//!   and the scope returns every failure in a [`ScopeError`].
//! * A [`TaskHandle`] is branded with its scope's lifetime, so it cannot
//!   escape; [`TaskHandle::join`] and [`TaskHandle::cancel_and_wait`] return
//!   an [`Outcome`] that says exactly how the task ended.
//! * Cancellation comes in two strengths: *stop*, a request observed with
//!   [`stop_requested`] / [`is_stopping`], and *cancel*, which drops the
//!   task's future at its next `.await`. Each carries a [`CancelReason`]: kind,
//!   message, the caller's source location, the task that asked, and the
//!   reason that led to it.
//! * [`Scope::shield`] runs work that cancellation does not reach but that
//!   the scope still waits for; [`Scope::defer`] registers async cleanup
//!   that runs however the scope ends.
//! * A [`Supervisor`] is a long-lived scope where a child's failure is
//!   logged, counted and maybe restarted, never the end of its siblings; it
//!   shuts down in phases and reports how each child ended.
//! * [`tree()`] shows every live scope and task.
//!
//! # Features
//!
//! * `serde`: [`TaskTree`] serializes (as a flat list of entries).
//! * `metrics`: supervisors, periodic schedules and scopes are counted
//!   through the `metrics` facade; see the `metrics` module.
//! * `taskdump`: under `--cfg tokio_unstable` on Linux, `task_dump()`
//!   places tokio's task dumps in the tree, and `#[tethered::main]`
//!   prints them on SIGUSR1 (without that cfg the feature does nothing).
//! * `test-util`: the `testing` module, a kit for testing concurrent code
//!   (assertions on outcomes, tree snapshots, a runner for `main`'s
//!   shutdown on a paused clock).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tethered::{CancelKind, Outcome, Scope};
//!
//! let result = Scope::run(async |scope| {
//!     let fast = scope.spawn_named("fast", async { "fast answer" });
//!     let slow = scope.spawn_named("slow", std::future::pending::<&str>());
//!     let answer = fast.join().await.unwrap();
//!     match slow.cancel_and_wait("have an answer").await {
//!         Outcome::Cancelled(reason) => assert_eq!(reason.kind(), CancelKind::Explicit),
//!         other => panic!("unexpected {other:?}"),
//!     }
//!     answer
//! })
//! .await;
//! assert_eq!(result.unwrap(), "fast answer");
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod budget;
mod cleanup;
mod current;
mod deadline;
mod entry;
mod error;
pub mod local;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
mod never;
mod node;
mod outcome;
mod periodic;
mod random;
mod reason;
mod scope;
mod scope_report;
mod scoped_fn;
mod shield;
mod stop;
mod supervisor;
mod task;
#[cfg(all(tokio_unstable, feature = "taskdump"))]
mod taskdump;
#[cfg(feature = "test-util")]
pub mod testing;
mod tree;
#[cfg(feature = "serde")]
mod tree_json;
mod unwind;
mod wait;

mod macros;

/// Runs an `async fn`'s body in a new scope, child of the caller's scope.
///
/// Inside the body, [`spawn!`], [`shield!`], [`spawn_blocking!`] and
/// [`defer!`] start children and register cleanups on that scope, and
/// [`scope!`] is the [`Scope`] itself. The scope ends when the body has
/// returned, every child has ended and every cleanup has run.
///
/// A body that uses [`spawn_local!`] runs in a [`LocalScope`]: its local
/// children are polled by the fn's own task and may borrow the fn's
/// arguments (`&self`, `&[T]`, owned arguments too). The fn's future stays
/// `Send` (its body is boxed); with `send = false` the children may hold
/// `!Send` values and the fn's future is `!Send` (a current-thread runtime,
/// a `LocalSet`, or `#[tethered::main(flavor = "local")]`). See the book's
/// chapter on local children.
///
/// Options: `name = "…"` (default: the fn's name), `on_exit = join | cancel`
/// (default `join`), `timeout = "30s"`, `cleanup_timeout = "10s"`,
/// `send = false` (local children may be `!Send`), and `crate = tt` (see
/// below).
///
/// ```
/// use tethered::scoped;
///
/// struct Index {
///     stop_words: Vec<&'static str>,
/// }
///
/// impl Index {
///     // One local child per document, each borrowing `self` and its
///     // document: no Arc, no clone.
///     #[scoped]
///     async fn count(&self, docs: &[String]) -> usize {
///         let handles: Vec<_> = docs
///             .iter()
///             .map(|doc| {
///                 spawn_local!(async move {
///                     doc.split_whitespace()
///                         .filter(|word| !self.stop_words.contains(word))
///                         .count()
///                 })
///             })
///             .collect();
///         let mut total = 0;
///         for handle in handles {
///             total += handle.join().await.unwrap();
///         }
///         total
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let index = Index { stop_words: vec!["the", "a"] };
/// let docs = vec!["the cat".to_owned(), "a dog and a cat".to_owned()];
/// assert_eq!(index.count(&docs).await, 4);
/// # }
/// ```
///
/// How a failure reaches the caller depends on the return type:
///
/// * `Result<T, E>`, or any alias of it (`io::Result<T>`, `type Reply<T> =
///   Result<T, MyError>`: the type checker decides, not the spelling): a
///   child's failure arrives as `Err(E::from(ScopeError))`, so `E` must
///   implement `From<ScopeError>`. A body that returns `Err` cancels the
///   children still running, with a reason that shows the error (through
///   `Display`, else `Debug`), and its own error is returned.
/// * `()` or nothing: a child's failure is raised as a panic at the fn
///   (see below); a scope that cancelled itself just returns.
/// * anything else: a failure, or a cancellation that leaves no value to
///   return, is raised as a panic at the fn.
///
/// A raised failure, inside a tethered task or scope, is a panic whose
/// payload is the [`ScopeError`]: the enclosing scope catches it and records
/// it as a failure, nothing lost. Anywhere else (straight from
/// `#[tokio::main]`, say) it is an ordinary panic, located at the fn, whose
/// message is the whole error.
///
/// # Examples
///
/// ```
/// use tethered::{ScopeError, scoped};
///
/// #[derive(Debug)]
/// enum FetchError {
///     NotFound(String),
///     Scope(ScopeError),
/// }
///
/// impl From<ScopeError> for FetchError {
///     fn from(error: ScopeError) -> Self {
///         FetchError::Scope(error)
///     }
/// }
///
/// async fn fetch(url: &'static str) -> Result<usize, FetchError> {
///     if url.ends_with("missing") {
///         return Err(FetchError::NotFound(url.to_owned()));
///     }
///     Ok(url.len())
/// }
///
/// #[scoped(timeout = "5s")]
/// async fn total(urls: Vec<&'static str>) -> Result<usize, FetchError> {
///     let handles: Vec<_> = urls.into_iter().map(|url| spawn!(url, fetch(url))).collect();
///     let mut total = 0;
///     for handle in handles {
///         total += handle.join().await.unwrap();
///     }
///     Ok(total)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(total(vec!["a.io", "bb.io"]).await.unwrap(), 9);
/// let error = total(vec!["a.io", "x.io/missing"]).await.unwrap_err();
/// let FetchError::Scope(scope) = error else { panic!("{error:?}") };
/// assert_eq!(scope.failures()[0].task(), Some("x.io/missing"));
/// # }
/// ```
///
/// # A renamed dependency
///
/// The expansion names this crate `::tethered`. A crate whose Cargo.toml
/// gives it another name (`tt = { package = "tethered", … }`) says so with
/// `crate = tt` (or `crate = "tt"`): every path the expansion writes,
/// those of the rewritten `spawn!` and its siblings included, then starts
/// with `tt`, and `tt::spawn!` is recognised as `spawn!` is. The option
/// takes any path to the crate, a re-export included; `#[periodic]`,
/// `#[tethered::main]` and `#[tethered::test]` take it too, and
/// [`supervise!`] needs none.
///
/// ```
/// // Stands in for a dependency renamed `tt`: the crate under another path.
/// mod tt {
///     pub use tethered::*;
/// }
///
/// #[tt::scoped(crate = crate::tt)]
/// async fn answer() -> u32 {
///     tt::spawn!(async { 42 }).join().await.unwrap()
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # assert_eq!(answer().await, 42);
/// # }
/// ```
///
/// # Equivalent code without the macro
///
/// ```
/// # use tethered::{Scope, ScopeError};
/// # async fn fetch(url: &'static str) -> Result<usize, ScopeError> { Ok(url.len()) }
/// async fn total(urls: Vec<&'static str>) -> Result<usize, ScopeError> {
///     Scope::builder()
///         .name("total")
///         .timeout(std::time::Duration::from_secs(5))
///         .run(async move |scope| {
///             let handles: Vec<_> = urls
///                 .into_iter()
///                 .map(|url| scope.spawn_fallible_named(url, fetch(url)))
///                 .collect();
///             let mut total = 0;
///             for handle in handles {
///                 total += handle.join().await.unwrap();
///             }
///             total
///         })
///         .await
/// }
/// ```
#[doc(inline)]
pub use tethered_macros::scoped;

/// Turns an `async fn` into a schedule: the fn returns a [`PeriodicTask`]
/// (a future; spawn it or await it) that runs the body once per period, with
/// [`Periodic`]'s policies.
///
/// Options: `every = "5s"` (required), `overlap = cancel | skip | queue |
/// concurrent(N)` (default `skip`), `missed = skip | burst | delay` (default
/// `skip`), `first = now | after` (default `now`), `jitter = "…"` (shorter
/// than `every`; `seed = N` picks the sequence, by default one derived from
/// the fn's name), `timeout = "…"` per run, `on_error = continue | stop`
/// (default `continue`), `name = "…"` (default: the fn's name), `crate =
/// tt` for a dependency that Cargo.toml renames (see [`macro@scoped`]).
///
/// The body is one run and returns `()` or `Result<(), E>`. Each run gets its
/// own copy of the arguments (they must be `Clone`); a method takes `self` or
/// `&self`, and each run gets its own copy of `self` (`Self: Clone`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// #[tethered::periodic(every = "1s", overlap = cancel)]
/// async fn refresh(hits: Arc<AtomicU32>) {
///     hits.fetch_add(1, Ordering::SeqCst);
///     tokio::time::sleep(Duration::from_millis(1500)).await; // longer than a period
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let hits = Arc::new(AtomicU32::new(0));
/// tethered::Scope::run(async |scope| {
///     let schedule = refresh(hits.clone());
///     let stats = schedule.stats();
///     let handle = scope.spawn(schedule);
///     tokio::time::sleep(Duration::from_millis(3500)).await;
///     handle.stop("done");
///     handle.join().await.unwrap().unwrap();
///     // Ticks at 0, 1, 2 and 3s: each one replaced the run before it.
///     assert_eq!(stats.get().cancelled_by_overlap, 3);
/// })
/// .await
/// .unwrap();
/// assert_eq!(hits.load(Ordering::SeqCst), 4);
/// # }
/// ```
///
/// # Equivalent code without the macro
///
/// ```
/// # use std::sync::Arc;
/// # use std::sync::atomic::{AtomicU32, Ordering};
/// # use std::time::Duration;
/// use tethered::{Overlap, Periodic, PeriodicTask};
///
/// fn refresh(hits: Arc<AtomicU32>) -> PeriodicTask {
///     Periodic::every(Duration::from_secs(1))
///         .overlap(Overlap::Cancel)
///         .name("refresh")
///         .run(move || {
///             let hits = hits.clone();
///             async move {
///                 hits.fetch_add(1, Ordering::SeqCst);
///                 tokio::time::sleep(Duration::from_millis(1500)).await;
///             }
///         })
///         .boxed()
/// }
/// ```
#[doc(inline)]
pub use tethered_macros::periodic;

/// Runs a [`Supervisor`] written as one expression: its settings, its
/// restartable children and its body. The expression includes the `.await`
/// (so it goes in async code) and evaluates to the supervisor's
/// `Result<`[`Supervised<T>`]`, `[`SupervisorError`]`>`, `T` being the
/// body's value (`()` without a body).
///
/// ```text
/// supervise! {
///     name: "svc",                             // default "supervisor"
///     strategy: one_for_one,                   // or one_for_all, rest_for_one
///     intensity: 5 within "10s",               // the most restarts within any 10 s
///     shutdown: grace "5s" then cancel "10s",  // or `grace "5s"` alone
///     seed: 42,                                // of the backoff jitter; default 0
///     child "ingest" (permanent, backoff "100ms".."5s", factor 2, jitter 0.1) => ingest(rx.clone()),
///     child "janitor" (transient, shutdown "2s") => janitor(db.clone()),
///     child "cache" (shutdown brutal) => cache(),  // or `shutdown infinity`
///     child "once" => one_shot(),
///     #[cfg(feature = "metrics")]              // declared only in builds with the feature
///     child "metrics" => export_metrics(),
///     body |sv| { serve(listener, sv).await },
/// }
/// ```
///
/// Entries come in any order, separated by commas; each is optional, but
/// there must be at least one child or a body. The expansion names this
/// crate through `$crate`, so it works however Cargo.toml names the
/// dependency (`tt::supervise! { … }`), with no option to write. Durations are checked at
/// compile time, and the defaults are [`SupervisorBuilder`]'s. A shutdown
/// duration known only at run time (a command-line flag) is an expression
/// in parentheses: `shutdown: grace (config.grace) then cancel "10s"`.
///
/// * `child "name" (options) => expression`: the expression makes the
///   child's future ([`ChildSpec`]) and is evaluated again on every restart,
///   so it clones what it needs (`db.clone()`); the future is
///   `Send + 'static` and returns `()` or `Result<(), E>`. The options,
///   all optional: a [`Restart`] policy, `permanent` (the default),
///   `transient` or `temporary`; a [`Backoff`], `backoff "initial".."max"`
///   or `backoff none` (restart at once), `factor N` (at least 1) and
///   `jitter F` (from 0.0 to 1.0); a [`ChildShutdown`] of its own,
///   `shutdown "2s"` (asked to stop, then cancelled after 2 s), `shutdown
///   brutal` (cancelled at once), `shutdown infinity` (waited for as long as
///   it takes) or `shutdown (expression)` for a `Duration` known at run
///   time. A `#[cfg(…)]` before `child` declares
///   the child only in the builds it selects; no other attribute, and no
///   attribute on another entry, is accepted (doc comments aside, which are
///   comments).
/// * `body |sv| { … }`: an async closure that gets `sv: &Supervisor`, to
///   spawn dynamic children, read the stats or shut the supervisor down. The
///   supervisor shuts down when the body returns, and its value is
///   [`Supervised::value`]. Without a body, the supervisor runs until it is
///   shut down, its enclosing scope stops or cancels it, or it fails.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// async fn flaky(starts: Arc<AtomicU32>) -> Result<(), String> {
///     if starts.fetch_add(1, Ordering::SeqCst) == 0 {
///         return Err("the first start fails".to_owned());
///     }
///     tethered::stop_requested().await;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let starts = Arc::new(AtomicU32::new(0));
/// let supervised = tethered::supervise! {
///     name: "service",
///     child "flaky" (transient, backoff none) => flaky(starts.clone()),
///     body |sv| {
///         while starts.load(Ordering::SeqCst) < 2 {
///             tokio::task::yield_now().await;
///         }
///         sv.stats()
///     },
/// }
/// .unwrap();
/// let stats = supervised.value.unwrap();
/// assert_eq!((stats.failed, stats.restarted), (1, 1));
/// # }
/// ```
///
/// # Equivalent code without the macro
///
/// ```
/// # use std::sync::Arc;
/// # use std::sync::atomic::AtomicU32;
/// # async fn flaky(_: Arc<AtomicU32>) -> Result<(), String> { Ok(()) }
/// use tethered::{Backoff, ChildSpec, Restart, Supervisor};
///
/// # async fn run(starts: Arc<AtomicU32>) {
/// let supervised = Supervisor::builder()
///     .name("service")
///     .child(
///         ChildSpec::new("flaky", || flaky(starts.clone()))
///             .restart(Restart::Transient)
///             .backoff(Backoff::none()),
///     )
///     .run(async |sv: &Supervisor| sv.stats())
///     .await;
/// # let _ = supervised;
/// # }
/// ```
// A `macro_rules!` around the procedural macro, to hand it `$crate`: the
// expansion then names this crate under whatever name the user depends on
// it, with no option to write.
#[macro_export]
macro_rules! supervise {
    ($($entries:tt)*) => {
        $crate::__private::supervise_impl! { crate = $crate; $($entries)* }
    };
}

/// `#[tokio::main]` plus a root scope named `main` and signal handling.
///
/// The body is a scope like a [`macro@scoped`] fn's (use [`spawn!`] and the
/// others in it). The first SIGINT, SIGTERM or SIGHUP asks every task to stop
/// ([`CancelKind::Signal`]), then cancels them after `grace`; a second
/// signal cancels at once. If tasks are still running `cancel_timeout` after
/// the cancellation, the task tree is printed and the process exits with 1.
/// The exit code is 0 only when every task finished or was cleanly
/// cancelled; otherwise the scope's error is printed on stderr. SIGUSR1
/// prints the task tree on stderr, and the program goes on.
///
/// Options: `grace = "10s"`, `cancel_timeout = "30s"` (the defaults),
/// `dump_tree = false` (to leave SIGUSR1 alone),
/// `flavor = "multi_thread" | "current_thread" | "local"`, `worker_threads
/// = N`, `crate = tt` for a dependency that Cargo.toml renames (see
/// [`macro@scoped`]). With `flavor = "local"` the program runs on a tokio
/// `LocalRuntime` and its body may start [`spawn_local!`] children, `!Send`
/// ones included, with the same signals, grace and cancel timeout.
///
/// ```no_run
/// #[tethered::main(grace = "5s")]
/// async fn main() {
///     spawn!("ticker", async {
///         tethered::stop_requested().await; // SIGINT, SIGTERM or SIGHUP
///     });
/// }
/// ```
#[doc(inline)]
pub use tethered_macros::main;

/// `#[tokio::test]` plus a root scope named `test`; a failure of the scope
/// fails the test. Options: `flavor` (`"current_thread"`, the default,
/// `"multi_thread"` or `"local"`: a `LocalRuntime` whose body may start
/// [`spawn_local!`] children), `worker_threads`, `start_paused = true`
/// (which needs tokio's `test-util` feature, as `#[tokio::test]` does),
/// `crate = tt` for a dependency that Cargo.toml renames (see
/// [`macro@scoped`]).
///
/// ```
/// #[tethered::test(start_paused = true)]
/// async fn reaches_the_deadline() {
///     let ticks = spawn!(async { tokio::time::sleep(std::time::Duration::from_secs(60)).await });
///     ticks.join().await.unwrap();
/// }
/// # fn main() {}
/// ```
#[doc(inline)]
pub use tethered_macros::test;

#[doc(inline)]
pub use cleanup::CleanupOutput;
#[doc(inline)]
pub use current::{Current, current};
#[doc(inline)]
pub use error::{
    FailureKind, PanicPayload, ScopeError, ScopeErrorKind, SpawnError, TaskError, TaskFailure,
};
#[doc(inline)]
pub use local::{LocalMode, LocalScope, NonSend, SendBody, Sendable};
pub use outcome::Outcome;
#[doc(inline)]
pub use periodic::{
    MIN_PERIOD, Missed, OnError, OnStop, Overlap, Periodic, PeriodicError, PeriodicRun,
    PeriodicStats, PeriodicStatsHandle, PeriodicTask, RunFailure, RunOutput,
};
#[doc(inline)]
pub use reason::{CancelKind, CancelReason, IntoCancelReason};
#[doc(inline)]
pub use scope::{DEFAULT_CLEANUP_TIMEOUT, OnExit, Scope, ScopeBuilder, ScopeHandle};
#[doc(inline)]
pub use scope_report::{ChildAccount, KEPT_CHILDREN, ScopeReport, TaskEnd};
#[doc(inline)]
pub use stop::{StopRequested, StopSignal, is_stopping, stop_requested};
#[doc(inline)]
pub use supervisor::{
    Backoff, ChildEnd, ChildExit, ChildHandle, ChildOutput, ChildReport, ChildRole, ChildShutdown,
    ChildSpec, DEFAULT_CANCEL_TIMEOUT, DEFAULT_GRACE, DEFAULT_INTENSITY, DEFAULT_INTENSITY_WINDOW,
    Restart, ShutdownFuture, ShutdownReport, Strategy, Supervised, Supervisor, SupervisorBuilder,
    SupervisorError, SupervisorErrorKind, SupervisorStats,
};
#[doc(inline)]
pub use task::TaskHandle;
#[cfg(all(tokio_unstable, feature = "taskdump"))]
pub use taskdump::{TaskDump, task_dump};
#[doc(inline)]
pub use tree::{EntryKind, EntryState, TaskTree, TreeEntry, tree};
#[doc(inline)]
pub use wait::WaitSite;

// Not public API. Used by the code the `tethered-macros` expand into.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
