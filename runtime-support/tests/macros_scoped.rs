//! What `#[scoped]`, the scoped macros and `#[tethered::test]` expand into,
//! checked by behaviour.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tethered::testing::{assert_cancelled, assert_completed};

use tethered::{CancelKind, Scope, ScopeError, scoped};
use tokio::time::{Instant, sleep};

#[derive(Debug)]
enum AppError {
    Refused(&'static str),
    Scope(ScopeError),
}

impl From<ScopeError> for AppError {
    fn from(error: ScopeError) -> Self {
        AppError::Scope(error)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

async fn refuse(after: u64, host: &'static str) -> Result<u32, AppError> {
    sleep(Duration::from_secs(after)).await;
    Err(AppError::Refused(host))
}

async fn answer(after: u64, value: u32) -> Result<u32, AppError> {
    sleep(Duration::from_secs(after)).await;
    Ok(value)
}

#[scoped]
async fn sum(values: Vec<u32>) -> Result<u32, AppError> {
    let handles: Vec<_> = values.into_iter().map(|v| spawn!(answer(1, v))).collect();
    let mut total = 0;
    for handle in handles {
        total += handle.join().await.unwrap();
    }
    Ok(total)
}

#[tokio::test(start_paused = true)]
async fn spawn_and_join_in_a_scoped_fn() {
    let started = Instant::now();
    assert_eq!(sum(vec![1, 2, 3]).await.unwrap(), 6);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "children ran concurrently"
    );
}

#[scoped(name = "fan-out")]
async fn first_failure_wins() -> Result<u32, AppError> {
    spawn!("slow", answer(10, 1));
    spawn!("refused", refuse(1, "db.internal"));
    sleep(Duration::from_secs(60)).await;
    Ok(0)
}

#[tokio::test(start_paused = true)]
async fn a_failing_child_reaches_the_caller_through_from_scope_error() {
    let started = Instant::now();
    let AppError::Scope(error) = first_failure_wins().await.unwrap_err() else {
        panic!("expected the scope's error");
    };
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "siblings were cancelled"
    );
    assert_eq!(error.scope(), Some("fan-out"));
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.failures()[0].task(), Some("refused"));
    assert!(matches!(
        error.downcast_ref::<AppError>(),
        Some(AppError::Refused("db.internal"))
    ));
    assert_eq!(error.reason().unwrap().kind(), CancelKind::SiblingFailed);
}

#[derive(Debug, PartialEq)]
struct DebugOnly(u8);

#[scoped]
async fn debug_only_error_fails_the_scope() -> Result<(), ScopeError> {
    spawn!(async { Err::<(), _>(DebugOnly(7)) });
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_error_with_only_debug_still_fails_the_scope() {
    let error = debug_only_error_fails_the_scope().await.unwrap_err();
    let failure = &error.failures()[0];
    assert_eq!(
        failure.error().unwrap().downcast_ref::<DebugOnly>(),
        Some(&DebugOnly(7))
    );
    assert_eq!(failure.error().unwrap().to_string(), "DebugOnly(7)");
}

#[scoped]
async fn a_plain_value_is_not_a_failure() -> Result<Option<u8>, ScopeError> {
    let handle = spawn!(async { None::<u8> });
    Ok(handle.join().await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_future_with_any_other_output_fails_only_by_panicking() {
    assert_eq!(a_plain_value_is_not_a_failure().await.unwrap(), None);
}

#[scoped]
async fn body_error_cancels_children(log: Arc<Mutex<Vec<String>>>) -> Result<(), AppError> {
    let child_log = log.clone();
    spawn!("worker", async move {
        sleep(Duration::from_secs(30)).await;
        child_log.lock().unwrap().push("worker finished".into());
    });
    refuse(1, "config").await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_body_returning_err_cancels_the_rest_and_its_error_wins() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let error = body_error_cancels_children(log.clone()).await.unwrap_err();
    assert!(matches!(error, AppError::Refused("config")), "{error:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(log.lock().unwrap().is_empty(), "the worker was cancelled");
}

#[scoped]
async fn unit_fn_with_a_failing_child() {
    spawn!("bad", async { Err::<(), _>("broken pipe") });
}

#[tokio::test(start_paused = true)]
async fn a_unit_fn_re_raises_a_failure_as_a_panic_carrying_the_scope_error() {
    let error = Scope::run(async |scope| {
        scope.spawn_named("caller", unit_fn_with_a_failing_child());
    })
    .await
    .unwrap_err();
    let payload = error.failures()[0].panic().expect("a panic");
    assert!(
        payload.message().contains("broken pipe"),
        "{}",
        payload.message()
    );
    let inner = payload.take().unwrap().downcast::<ScopeError>().unwrap();
    assert_eq!(inner.scope(), Some("unit_fn_with_a_failing_child"));
    assert_eq!(inner.failures()[0].task(), Some("bad"));
}

#[scoped]
async fn cancels_itself(reached: Arc<Mutex<bool>>) {
    spawn!(std::future::pending::<()>());
    scope!().cancel("done early");
    sleep(Duration::from_secs(1)).await;
    *reached.lock().unwrap() = true;
}

#[tokio::test(start_paused = true)]
async fn a_unit_fn_that_cancels_its_own_scope_returns() {
    let reached = Arc::new(Mutex::new(false));
    cancels_itself(reached.clone()).await;
    assert!(!*reached.lock().unwrap(), "the body was interrupted");
}

#[scoped]
async fn value_fn() -> u32 {
    let handle = spawn!(async { 40 });
    handle.join().await.unwrap() + 2
}

#[tokio::test(start_paused = true)]
async fn a_value_fn_returns_its_value() {
    assert_eq!(value_fn().await, 42);
}

#[scoped(name = "outer")]
async fn outer(seen: Arc<Mutex<Option<tethered::CancelReason>>>) -> Result<(), ScopeError> {
    spawn!("middle", middle(seen));
    sleep(Duration::from_secs(1)).await;
    scope!().cancel("operator");
    Ok(())
}

#[scoped(name = "inner")]
async fn middle(seen: Arc<Mutex<Option<tethered::CancelReason>>>) {
    struct Record(Arc<Mutex<Option<tethered::CancelReason>>>);
    impl Drop for Record {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = tethered::current().cancel_reason();
        }
    }
    spawn!("leaf", async move {
        let _record = Record(seen);
        std::future::pending::<()>().await
    });
    std::future::pending::<()>().await
}

#[tokio::test(start_paused = true)]
async fn nested_scoped_fns_are_child_scopes_and_the_chain_says_so() {
    let seen = Arc::new(Mutex::new(None));
    outer(seen.clone()).await.unwrap();
    let reason = seen.lock().unwrap().clone().expect("the leaf saw a reason");
    let chain: Vec<_> = reason.chain().map(|r| (r.kind(), r.origin())).collect();
    assert_eq!(
        chain,
        [
            (CancelKind::ParentCancelled, Some("inner")),
            (CancelKind::ParentCancelled, Some("middle")),
            (CancelKind::ParentCancelled, Some("outer")),
            (CancelKind::Explicit, Some("outer")),
        ],
        "{reason}"
    );
    assert_eq!(reason.root().message(), Some("operator"));
}

struct Counter {
    hits: u32,
}

impl Counter {
    #[scoped]
    async fn by_ref(&self) -> u32 {
        let hits = self.hits;
        spawn!(async move { hits }).join().await.unwrap()
    }

    #[scoped]
    async fn by_mut(&mut self) {
        let handle = spawn!(async { 1 });
        self.hits += handle.join().await.unwrap();
    }

    #[scoped]
    async fn by_value(self) -> u32 {
        self.hits
    }
}

#[tokio::test(start_paused = true)]
async fn methods_take_self_in_every_form() {
    let mut counter = Counter { hits: 1 };
    counter.by_mut().await;
    assert_eq!(counter.by_ref().await, 2);
    assert_eq!(counter.by_value().await, 2);
}

#[scoped]
async fn generic<T: Send + Clone + 'static>(value: T) -> Vec<T> {
    let copy = value.clone();
    let handle = spawn!(async move { copy });
    vec![value, handle.join().await.unwrap()]
}

#[tokio::test(start_paused = true)]
async fn generic_fns_work() {
    assert_eq!(generic("x").await, ["x", "x"]);
}

#[scoped(on_exit = cancel, cleanup_timeout = "1s")]
async fn connection(log: Arc<Mutex<Vec<String>>>) {
    let keepalive = log.clone();
    spawn!("keepalive", async move {
        let _entry = Entry(keepalive, "keepalive");
        std::future::pending::<()>().await
    });
    let closing = log.clone();
    defer!(async move { closing.lock().unwrap().push("closed socket".into()) });
    let flushing = log.clone();
    defer!(async move { flushing.lock().unwrap().push("flushed".into()) });
    sleep(Duration::from_secs(2)).await;
}

struct Entry(Arc<Mutex<Vec<String>>>, &'static str);

impl Drop for Entry {
    fn drop(&mut self) {
        let reason = tethered::current().cancel_reason().unwrap();
        assert_eq!(reason.kind(), CancelKind::ScopeExit);
        self.0.lock().unwrap().push(format!("{} cancelled", self.1));
    }
}

#[tokio::test(start_paused = true)]
async fn on_exit_cancel_stops_helpers_and_cleanups_run_last_first() {
    let log = Arc::new(Mutex::new(Vec::new()));
    connection(log.clone()).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["keepalive cancelled", "flushed", "closed socket"]
    );
}

#[scoped(timeout = "3s")]
async fn too_slow() -> Result<(), ScopeError> {
    sleep(Duration::from_secs(10)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_timeout_option_fails_the_scope_with_a_timeout() {
    let started = Instant::now();
    let error = too_slow().await.unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(error.reason().unwrap().origin(), Some("too_slow"));
}

#[scoped]
async fn shielded_and_blocking(saved: Arc<Mutex<Vec<&'static str>>>) {
    let shielded = saved.clone();
    shield!("flush", async move {
        sleep(Duration::from_secs(5)).await;
        shielded.lock().unwrap().push("shield finished");
    });
    let blocking = saved.clone();
    let work = spawn_blocking!(move || {
        blocking.lock().unwrap().push("blocking ran");
        7
    });
    assert_eq!(work.join().await.unwrap(), 7);
    scope!().cancel("shutting down");
}

#[tokio::test(start_paused = true)]
async fn shields_and_blocking_work_are_waited_for() {
    let saved = Arc::new(Mutex::new(Vec::new()));
    shielded_and_blocking(saved.clone()).await;
    assert_eq!(*saved.lock().unwrap(), ["blocking ran", "shield finished"]);
}

#[scoped]
async fn macros_inside_select() -> Result<&'static str, ScopeError> {
    let fast = spawn!(async { "fast" });
    tokio::select! {
        outcome = fast.join() => Ok(outcome.unwrap()),
        _ = spawn!(sleep(Duration::from_secs(9))).join() => Ok("slow"),
    }
}

#[tokio::test(start_paused = true)]
async fn scoped_macros_work_inside_other_macros() {
    assert_eq!(macros_inside_select().await.unwrap(), "fast");
}

const SPAWN_LINE: u32 = line!() + 4;

#[scoped]
async fn where_spawned() -> (&'static str, u32) {
    let handle = spawn!(async {});
    let location = handle.location();
    let _ = handle.join().await;
    (location.file(), location.line())
}

#[tokio::test(start_paused = true)]
async fn the_spawn_location_is_the_macro_call() {
    assert_eq!(where_spawned().await, (file!(), SPAWN_LINE));
}

#[scoped]
async fn spawn_into_outer(outer: &Scope) -> usize {
    let handle = outer.spawn(async { 5usize });
    handle.join().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn spawning_into_an_outer_scope_passed_by_reference() {
    let value = Scope::run(async |scope| spawn_into_outer(scope).await)
        .await
        .unwrap();
    assert_eq!(value, 5);
}

#[tethered::test(start_paused = true)]
async fn tethered_test_runs_the_body_as_a_root_scope() {
    let started = Instant::now();
    let ticker = spawn!("ticker", sleep(Duration::from_secs(60)));
    assert_completed!(ticker.join().await);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert_eq!(tethered::current().name(), Some("test"));
}

/// The expansion names only absolute paths: a module that shadows `core`,
/// `Result`, `Ok`, `tokio` and `Box` still compiles and runs.
mod hygiene {
    #![allow(dead_code, non_camel_case_types, clippy::module_inception)]

    mod core {}
    mod tokio {}
    type Result = ();
    struct Ok;
    struct Box;
    struct Option;

    #[tethered::scoped(timeout = "1s", on_exit = cancel)]
    pub(super) async fn shadowed() -> ::std::result::Result<u32, tethered::ScopeError> {
        let handle = spawn!("named", async { ::std::result::Result::<u32, &str>::Ok(1) });
        defer!(async {});
        let value = handle.join().await.unwrap();
        ::std::result::Result::Ok(value + 1)
    }
}

#[::tokio::test(start_paused = true)]
async fn expansions_survive_shadowed_names() {
    assert_eq!(hygiene::shadowed().await.unwrap(), 2);
}

/// Attributes on the statements the macros rewrite apply to what they are
/// rewritten into: a call compiled out by `#[cfg]` starts nothing.
#[scoped]
async fn attributes_on_rewritten_statements(
    log: Arc<Mutex<Vec<&'static str>>>,
) -> Result<(), ScopeError> {
    #[cfg(not(test))]
    spawn!("compiled-out", async {
        Err::<(), _>("a task compiled out ran")
    });
    #[cfg(not(test))]
    shield!(async { Err::<(), _>("a shield compiled out ran") });
    #[cfg(not(test))]
    spawn_blocking!(|| panic!("blocking work compiled out ran"));
    #[cfg(not(test))]
    defer!(async { Err::<(), _>("a cleanup compiled out ran") });
    #[cfg(not(test))]
    scope!().cancel("compiled out");
    let spawned = log.clone();
    #[cfg(test)]
    spawn!("compiled-in", async move {
        spawned.lock().unwrap().push("spawned")
    });
    let cleaned = log.clone();
    #[cfg(test)]
    defer!(async move { cleaned.lock().unwrap().push("cleaned up") });
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cfg_on_a_rewritten_statement_compiles_it_in_or_out() {
    let log = Arc::new(Mutex::new(Vec::new()));
    attributes_on_rewritten_statements(log.clone())
        .await
        .unwrap();
    assert_eq!(*log.lock().unwrap(), ["spawned", "cleaned up"]);
}

/// Lint attributes on rewritten statements still apply, and an allowed
/// unused handle is the user's call.
mod lints_on_rewritten_statements {
    #![deny(unused_mut, unused_variables)]

    #[tethered::scoped]
    pub(super) async fn allowed() -> u32 {
        #[allow(unused_mut)]
        spawn!(async {
            let mut kept = 1;
            kept + 1
        });
        #[allow(unused_variables)]
        let quiet = spawn!(async { 2 });
        3
    }

    /// An inner attribute stays at the top of the body.
    #[tethered::scoped]
    pub(super) async fn allowed_inside() -> u32 {
        #![allow(unused_mut)]
        let mut kept = 4;
        kept - 1
    }
}

#[tokio::test(start_paused = true)]
async fn lint_attributes_on_rewritten_statements_are_kept() {
    assert_eq!(lints_on_rewritten_statements::allowed().await, 3);
    assert_eq!(lints_on_rewritten_statements::allowed_inside().await, 3);
}

/// `spawn!` of an async block that never returns: a loop nothing breaks
/// out of, or `pending().await`. Its output is `!`, and the scope's
/// `on_exit = cancel`, or its handle, ends it.
#[scoped(on_exit = cancel)]
async fn futures_that_never_return(beats: Arc<AtomicU32>) -> Result<(), ScopeError> {
    let counted = beats.clone();
    spawn!("heartbeat", async move {
        loop {
            counted.fetch_add(1, Ordering::SeqCst);
            sleep(Duration::from_secs(1)).await;
        }
    });
    spawn!("idle", async { std::future::pending().await });
    let ticking = beats.clone();
    let spawned_at = line!() + 1;
    let ticker = spawn!(async move {
        loop {
            sleep(Duration::from_secs(1)).await;
            ticking.fetch_add(100, Ordering::SeqCst);
        }
    });
    // Located at the macro call, as any other spawn.
    assert_eq!(ticker.location().line(), spawned_at);
    sleep(Duration::from_millis(2_500)).await;
    assert_cancelled!(ticker.cancel_and_wait("enough ticks").await, "enough ticks");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn spawn_takes_a_future_that_never_returns() {
    let beats = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    futures_that_never_return(beats.clone()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(2_500));
    // Beats at 0, 1 and 2 s; ticks at 1 and 2 s.
    assert_eq!(beats.load(Ordering::SeqCst), 203);
}

#[scoped(on_exit = cancel)]
async fn a_shield_that_never_returns() -> Result<(), ScopeError> {
    shield!("watch", async {
        tethered::stop_requested().await;
        panic!("the watch was asked to stop")
    });
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shield_takes_a_future_that_never_returns() {
    let error = a_shield_that_never_returns().await.unwrap_err();
    let failure = &error.failures()[0];
    assert_eq!(failure.task(), Some("watch"));
    let message = failure.panic().expect("a panic").message();
    assert_eq!(message, "the watch was asked to stop");
}

/// An alias of `Result` is a `Result`: the type checker, not the spelling,
/// decides how failures reach the caller.
type Reply<T> = Result<T, ScopeError>;

#[scoped]
async fn aliased_result() -> Reply<u32> {
    spawn!("bad", async { Err::<(), _>("disk full") });
    std::future::pending::<()>().await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn a_result_alias_receives_failures_as_err() {
    let error = aliased_result().await.unwrap_err();
    assert_eq!(error.failures()[0].task(), Some("bad"));
    assert_eq!(
        error.failures()[0].error().unwrap().to_string(),
        "disk full"
    );
}

type AppResult<T> = Result<T, AppError>;

/// Records the reason its task was cancelled, as the task's `Drop` sees it.
struct RecordReason(Arc<Mutex<Option<tethered::CancelReason>>>);

impl Drop for RecordReason {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = tethered::current().cancel_reason();
    }
}

#[scoped]
async fn body_error_through_an_alias(
    seen: Arc<Mutex<Option<tethered::CancelReason>>>,
) -> AppResult<()> {
    spawn!("uploader", async move {
        let _record = RecordReason(seen);
        std::future::pending::<()>().await
    });
    tokio::task::yield_now().await;
    Err(AppError::Refused("no bucket"))
}

#[tokio::test(start_paused = true)]
async fn children_cancelled_by_the_bodys_error_see_the_error() {
    let seen = Arc::new(Mutex::new(None));
    let error = body_error_through_an_alias(seen.clone()).await.unwrap_err();
    assert!(matches!(error, AppError::Refused("no bucket")), "{error:?}");
    let reason = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the child was cancelled");
    assert_eq!(reason.kind(), CancelKind::ScopeExit);
    assert_eq!(
        reason.message(),
        Some("the body returned an error: Refused(\"no bucket\")"),
    );
}

#[derive(Debug)]
struct OnlyDebug;

impl From<ScopeError> for OnlyDebug {
    fn from(_: ScopeError) -> Self {
        OnlyDebug
    }
}

#[scoped]
async fn body_error_without_display(
    seen: Arc<Mutex<Option<tethered::CancelReason>>>,
) -> Result<(), OnlyDebug> {
    spawn!(async move {
        let _record = RecordReason(seen);
        std::future::pending::<()>().await
    });
    tokio::task::yield_now().await;
    Err(OnlyDebug)
}

#[tokio::test(start_paused = true)]
async fn an_error_with_only_debug_is_shown_through_debug_in_the_reason() {
    let seen = Arc::new(Mutex::new(None));
    assert!(body_error_without_display(seen.clone()).await.is_err());
    let reason = seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        reason.message(),
        Some("the body returned an error: OnlyDebug")
    );
}

/// The line of `unit_fn_with_a_failing_child`'s name, where its panic is
/// located.
fn unit_fn_line() -> u32 {
    let at = include_str!("macros_scoped.rs")
        .lines()
        .position(|line| line.starts_with("async fn unit_fn_with_a_failing_child"))
        .unwrap();
    u32::try_from(at).unwrap() + 1
}

#[test]
fn a_failing_unit_fn_outside_any_scope_panics_with_its_error_at_the_fn() {
    // Only this thread's panics are recorded; the others go to the hook
    // that was there before.
    let this = std::thread::current().id();
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let previous = Arc::new(std::panic::take_hook());
    let forward = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == this {
            let location = info.location().map(|at| (at.file().to_owned(), at.line()));
            *record.lock().unwrap() = location;
        } else {
            forward(info);
        }
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let panicked = std::panic::catch_unwind(|| {
        runtime.block_on(unit_fn_with_a_failing_child());
    });
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));

    let payload = panicked.unwrap_err();
    let message = payload
        .downcast::<String>()
        .expect("a message, not an opaque payload");
    assert!(message.contains("broken pipe"), "{message}");
    assert!(
        message.contains("unit_fn_with_a_failing_child"),
        "{message}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        Some((file!().to_owned(), unit_fn_line()))
    );
}

/// Half a trillion years: a duration, but no instant is that far away.
#[scoped(timeout = "500000000000y", cleanup_timeout = "500000000000y")]
async fn with_a_timeout_of_ages() -> u32 {
    defer!(async {});
    spawn!(async { 7u32 }).join().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_for_an_instant_never_passes() {
    assert_eq!(with_a_timeout_of_ages().await, 7);
}
