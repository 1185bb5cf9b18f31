//! Property test: random task trees with random behaviour, each run on a
//! fresh current-thread runtime with paused time, must keep the structural
//! promises:
//!
//! * no task is still alive once its scope has returned, and nothing is left
//!   in `tethered::tree()` once the root scope has returned;
//! * every registered cleanup ran exactly once;
//! * every cancellation reason has a location;
//! * every failure (a task's `Err` or panic, a cleanup's error, panic or
//!   timeout) appears in the scope's result: directly in the scope it
//!   happened in, and, counted recursively through nested `ScopeError`s,
//!   in the root scope's result.
//!
//! `PROPTEST_CASES` overrides the default of 2000 cases.

use std::fmt;
use std::future::pending;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tethered::{CancelReason, OnExit, Outcome, Scope, ScopeError, TaskHandle};
use tokio::time::{Instant, sleep, sleep_until};

// ---------------------------------------------------------------------------
// The generated trees.

/// How a task ends once its (optional) nested scope has returned and its
/// delay has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Finish,
    /// `Err` (a task with a nested scope, or a shield, panics instead: its
    /// error type is taken by the nested `ScopeError`, or it has none).
    Fail,
    Panic,
    /// Hangs until cancelled (a shield, which its scope cannot cancel,
    /// finishes instead).
    Hang,
}

#[derive(Debug, Clone)]
struct TaskSpec {
    shield: bool,
    delay: u64,
    end: End,
    /// The scope's body cancels this task (`cancel_and_wait`) at this time.
    cancel_at: Option<u64>,
    nested: Option<ScopeSpec>,
}

#[derive(Debug, Clone, Copy)]
enum CleanupEnd {
    Ok,
    Err,
    Panic,
}

#[derive(Debug, Clone)]
struct CleanupSpec {
    delay: u64,
    end: CleanupEnd,
}

#[derive(Debug, Clone)]
struct ScopeSpec {
    timeout: Option<u64>,
    on_exit: OnExit,
    cleanup_timeout: u64,
    cleanups: Vec<CleanupSpec>,
    children: Vec<TaskSpec>,
}

fn end_strategy() -> impl Strategy<Value = End> {
    prop_oneof![
        3 => Just(End::Finish),
        1 => Just(End::Fail),
        1 => Just(End::Panic),
        2 => Just(End::Hang),
    ]
}

fn leaf_task() -> impl Strategy<Value = TaskSpec> {
    (
        prop::bool::weighted(0.15),
        0..40u64,
        end_strategy(),
        prop::option::weighted(0.3, 0..60u64),
    )
        .prop_map(|(shield, delay, end, cancel_at)| TaskSpec {
            shield,
            delay,
            end,
            cancel_at,
            nested: None,
        })
}

fn cleanup_strategy() -> impl Strategy<Value = CleanupSpec> {
    (
        0..30u64,
        prop_oneof![
            4 => Just(CleanupEnd::Ok),
            1 => Just(CleanupEnd::Err),
            1 => Just(CleanupEnd::Panic),
        ],
    )
        .prop_map(|(delay, end)| CleanupSpec { delay, end })
}

fn scope_strategy(
    children: impl Strategy<Value = Vec<TaskSpec>>,
) -> impl Strategy<Value = ScopeSpec> {
    (
        prop::option::weighted(0.4, 1..100u64),
        prop::bool::ANY,
        1..40u64,
        prop::collection::vec(cleanup_strategy(), 0..=2),
        children,
    )
        .prop_map(
            |(timeout, cancel_on_exit, cleanup_timeout, cleanups, children)| {
                let on_exit = if cancel_on_exit {
                    OnExit::Cancel
                } else {
                    OnExit::Join
                };
                let mut scope = ScopeSpec {
                    timeout,
                    on_exit,
                    cleanup_timeout,
                    cleanups,
                    children,
                };
                // Every scope must end on its own: with neither a timeout nor
                // `on_exit = cancel`, its body cancels every hanging child.
                if scope.timeout.is_none() && scope.on_exit == OnExit::Join {
                    for child in &mut scope.children {
                        if child.end == End::Hang && !child.shield && child.cancel_at.is_none() {
                            child.cancel_at = Some(child.delay + 10);
                        }
                    }
                }
                scope
            },
        )
}

/// A root scope: depth <= 4 scopes (root + 3 nested levels), width <= 6.
fn tree_strategy() -> impl Strategy<Value = ScopeSpec> {
    let task = leaf_task().prop_recursive(3, 120, 6, |inner| {
        (
            leaf_task(),
            prop::option::weighted(0.6, scope_strategy(prop::collection::vec(inner, 0..=6))),
        )
            .prop_map(|(mut task, nested)| {
                task.nested = nested;
                task
            })
    });
    scope_strategy(prop::collection::vec(task, 0..=6))
}

// ---------------------------------------------------------------------------
// What a run records.

/// Bookkeeping for one scope instance.
#[derive(Debug)]
struct ScopeStats {
    parent: Option<usize>,
    /// Failures recorded directly in this scope, counted where they happen:
    /// children that returned `Err` or panicked, cleanups that failed.
    direct: AtomicUsize,
    /// Child task futures alive right now.
    alive: AtomicUsize,
    /// `failures().len()` of the scope's result once `run` returned (0 for
    /// `Ok`); `None` while running, or forever if its future was dropped.
    returned: Mutex<Option<usize>>,
}

#[derive(Debug, Default)]
struct Case {
    scopes: Mutex<Vec<Arc<ScopeStats>>>,
    /// (registered, started) per cleanup.
    cleanups: Mutex<Vec<(usize, usize)>>,
    /// Leaf failures: a task's own `Err` or panic, a cleanup's failure.
    leaves: AtomicUsize,
    live_tasks: AtomicUsize,
    reasons_checked: AtomicUsize,
    explicit_cancels_seen: AtomicUsize,
    tasks: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Case {
    fn new_scope(&self, parent: Option<usize>) -> (usize, Arc<ScopeStats>) {
        let stats = Arc::new(ScopeStats {
            parent,
            direct: AtomicUsize::new(0),
            alive: AtomicUsize::new(0),
            returned: Mutex::new(None),
        });
        let mut scopes = lock(&self.scopes);
        scopes.push(stats.clone());
        (scopes.len() - 1, stats)
    }

    fn violation(&self, what: String) {
        lock(&self.violations).push(what);
    }

    /// A leaf failure recorded directly in `scope`.
    fn leaf_failure(&self, scope: &ScopeStats) {
        self.leaves.fetch_add(1, Ordering::SeqCst);
        scope.direct.fetch_add(1, Ordering::SeqCst);
    }

    fn check_reason(&self, reason: &CancelReason, seen_by: &str) {
        self.reasons_checked.fetch_add(1, Ordering::Relaxed);
        for link in reason.chain() {
            if link.location().file().is_empty() || link.location().line() == 0 {
                self.violation(format!("{seen_by}: reason without a location: {reason}"));
            }
        }
    }
}

/// Held by every task future: counts it alive, and checks the reason it is
/// cancelled with (seen from `Drop`, as the task).
struct TaskGuard {
    case: Arc<Case>,
    scope: Arc<ScopeStats>,
}

impl TaskGuard {
    fn new(case: &Arc<Case>, scope: &Arc<ScopeStats>) -> Self {
        case.live_tasks.fetch_add(1, Ordering::SeqCst);
        scope.alive.fetch_add(1, Ordering::SeqCst);
        TaskGuard {
            case: case.clone(),
            scope: scope.clone(),
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(reason) = tethered::current().cancel_reason() {
            self.case.check_reason(&reason, "a task's Drop");
        }
        self.scope.alive.fetch_sub(1, Ordering::SeqCst);
        self.case.live_tasks.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held by every cleanup future: a cleanup dropped before it completed was
/// timed out, which is a failure of its scope.
struct CleanupGuard {
    case: Arc<Case>,
    scope: Arc<ScopeStats>,
    completed: bool,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.completed {
            self.case.leaf_failure(&self.scope);
        }
    }
}

#[derive(Debug)]
struct LeafError;

impl fmt::Display for LeafError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("leaf error")
    }
}

const EXPECTED: &str = "expected panic";

fn quiet_expected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !text.is_some_and(|text| text.starts_with(EXPECTED)) {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------
// Running a tree.

enum AnyHandle<'s> {
    Leaf(TaskHandle<'s, (), LeafError>),
    Nested(TaskHandle<'s, (), ScopeError>),
    Shield(TaskHandle<'s, ()>),
}

impl AnyHandle<'_> {
    async fn cancel_and_wait(self, reason: CancelReason) -> Option<CancelReason> {
        fn reason_of<E>(outcome: Outcome<(), E>) -> Option<CancelReason> {
            outcome.cancel_reason().cloned()
        }
        match self {
            AnyHandle::Leaf(handle) => reason_of(handle.cancel_and_wait(reason).await),
            AnyHandle::Nested(handle) => reason_of(handle.cancel_and_wait(reason).await),
            AnyHandle::Shield(handle) => reason_of(handle.cancel_and_wait(reason).await),
        }
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

fn run_scope(
    case: Arc<Case>,
    spec: ScopeSpec,
    parent: Option<usize>,
) -> BoxFuture<Result<(), ScopeError>> {
    Box::pin(async move {
        let (id, stats) = case.new_scope(parent);
        let mut builder = Scope::builder()
            .name(format!("scope-{id}"))
            .on_exit(spec.on_exit)
            .cleanup_timeout(Duration::from_millis(spec.cleanup_timeout));
        if let Some(timeout) = spec.timeout {
            builder = builder.timeout(Duration::from_millis(timeout));
        }
        let result = builder
            .run(async |scope| body(scope, &case, &spec, id, &stats).await)
            .await;
        let alive = stats.alive.load(Ordering::SeqCst);
        if alive != 0 {
            case.violation(format!(
                "scope-{id} returned with {alive} child futures still alive"
            ));
        }
        if let Err(error) = &result
            && let Some(reason) = error.reason()
        {
            case.check_reason(reason, "a scope error");
        }
        *lock(&stats.returned) = Some(result.as_ref().map_or_else(|e| e.failures().len(), |()| 0));
        result
    })
}

async fn body(
    scope: &Scope,
    case: &Arc<Case>,
    spec: &ScopeSpec,
    id: usize,
    stats: &Arc<ScopeStats>,
) {
    for cleanup in &spec.cleanups {
        let cleanup_id = {
            let mut cleanups = lock(&case.cleanups);
            cleanups.push((1, 0));
            cleanups.len() - 1
        };
        let case = case.clone();
        let stats = stats.clone();
        let cleanup = cleanup.clone();
        scope.defer(async move {
            lock(&case.cleanups)[cleanup_id].1 += 1;
            let mut guard = CleanupGuard {
                case: case.clone(),
                scope: stats.clone(),
                completed: false,
            };
            sleep(Duration::from_millis(cleanup.delay)).await;
            guard.completed = true;
            match cleanup.end {
                CleanupEnd::Ok => Ok(()),
                CleanupEnd::Err => {
                    case.leaf_failure(&stats);
                    Err(LeafError)
                }
                CleanupEnd::Panic => {
                    case.leaf_failure(&stats);
                    panic!("{EXPECTED}: cleanup");
                }
            }
        });
    }

    let mut cancels = Vec::new();
    for child in &spec.children {
        let handle = spawn_child(scope, case, id, stats, child.clone());
        if let Some(at) = child.cancel_at {
            cancels.push((at, handle));
        }
    }
    cancels.sort_by_key(|(at, _)| *at);

    let start = Instant::now();
    for (at, handle) in cancels {
        sleep_until(start + Duration::from_millis(at)).await;
        let line = line!() + 1;
        let reason = CancelReason::explicit("from outside");
        if let Some(seen) = handle.cancel_and_wait(reason.clone()).await {
            case.check_reason(&seen, "cancel_and_wait");
            if seen.same_as(&reason) {
                case.explicit_cancels_seen.fetch_add(1, Ordering::Relaxed);
                let location: &Location<'_> = seen.location();
                if location.file() != file!() || location.line() != line {
                    case.violation(format!("explicit reason located at {location}"));
                }
            }
        }
    }
}

fn spawn_child<'s>(
    scope: &'s Scope,
    case: &Arc<Case>,
    scope_id: usize,
    stats: &Arc<ScopeStats>,
    spec: TaskSpec,
) -> AnyHandle<'s> {
    let guard = TaskGuard::new(case, stats);
    case.tasks.fetch_add(1, Ordering::Relaxed);
    let case = case.clone();
    let stats = stats.clone();
    let delay = Duration::from_millis(spec.delay);
    match (spec.shield, spec.nested) {
        (true, nested) => AnyHandle::Shield(scope.shield(async move {
            let _guard = guard;
            if let Some(nested) = nested
                && let Err(error) = run_scope(case.clone(), nested, Some(scope_id)).await
            {
                // No error type to return it in: re-raise it as a panic
                // (without the panic hook).
                stats.direct.fetch_add(1, Ordering::SeqCst);
                std::panic::resume_unwind(Box::new(error));
            }
            sleep(delay).await;
            if matches!(spec.end, End::Fail | End::Panic) {
                case.leaf_failure(&stats);
                panic!("{EXPECTED}: shield");
            }
        })),
        (false, None) => AnyHandle::Leaf(scope.spawn_fallible(async move {
            let _guard = guard;
            sleep(delay).await;
            match spec.end {
                End::Finish => Ok(()),
                End::Fail => {
                    case.leaf_failure(&stats);
                    Err(LeafError)
                }
                End::Panic => {
                    case.leaf_failure(&stats);
                    panic!("{EXPECTED}: task");
                }
                End::Hang => pending().await,
            }
        })),
        (false, Some(nested)) => AnyHandle::Nested(scope.spawn_fallible(async move {
            let _guard = guard;
            if let Err(error) = run_scope(case.clone(), nested, Some(scope_id)).await {
                stats.direct.fetch_add(1, Ordering::SeqCst);
                return Err(error);
            }
            sleep(delay).await;
            match spec.end {
                End::Finish => Ok(()),
                End::Fail | End::Panic => {
                    case.leaf_failure(&stats);
                    panic!("{EXPECTED}: task with a nested scope");
                }
                End::Hang => pending().await,
            }
        })),
    }
}

/// Leaf failures in `error`, following nested `ScopeError`s (returned as a
/// task's `Err`, or re-raised as a shield's panic).
fn count_leaves(error: &ScopeError) -> usize {
    error
        .failures()
        .iter()
        .map(|failure| {
            if let Some(nested) = failure
                .error()
                .and_then(|error| error.downcast_ref::<ScopeError>())
            {
                return count_leaves(nested);
            }
            if let Some(payload) = failure.panic().and_then(|panic| panic.take())
                && let Some(nested) = payload.downcast_ref::<ScopeError>()
            {
                return count_leaves(nested);
            }
            1
        })
        .sum()
}

/// Coverage of the behaviours the cases exercised, over the whole run.
#[derive(Debug, Default)]
struct Coverage {
    cases: AtomicUsize,
    failed_roots: AtomicUsize,
    orphaned_scopes: AtomicUsize,
    nested_scopes: AtomicUsize,
    leaf_failures: AtomicUsize,
    reasons_checked: AtomicUsize,
    explicit_cancels: AtomicUsize,
    cleanups: AtomicUsize,
    tasks: AtomicUsize,
}

fn check_tree(spec: ScopeSpec, coverage: &Coverage) -> Result<(), TestCaseError> {
    let case = Arc::new(Case::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let (result, tree_after) = runtime.block_on(async {
        let result = run_scope(case.clone(), spec, None).await;
        (result, tethered::tree())
    });
    drop(runtime);

    let violations = lock(&case.violations).clone();
    prop_assert!(violations.is_empty(), "violations: {violations:#?}");
    prop_assert!(
        tree_after.is_empty(),
        "tree not empty after the root returned:\n{tree_after}"
    );
    let live = case.live_tasks.load(Ordering::SeqCst);
    prop_assert_eq!(live, 0, "task futures still alive after the root returned");

    for (id, (registered, started)) in lock(&case.cleanups).iter().enumerate() {
        prop_assert_eq!(
            started,
            registered,
            "cleanup {} registered {} times, started {} times",
            id,
            registered,
            started
        );
    }

    // Direct failures: what each scope that returned reported, against
    // what happened in it, plus one failure per nested scope that was
    // dropped (orphaned) with failures of its own.
    let scopes = lock(&case.scopes).clone();
    let mut with_orphans: Vec<usize> = scopes
        .iter()
        .map(|stats| stats.direct.load(Ordering::SeqCst))
        .collect();
    // Children are registered after their parents: walk backwards.
    for id in (0..scopes.len()).rev() {
        let orphaned = lock(&scopes[id].returned).is_none();
        if orphaned {
            coverage.orphaned_scopes.fetch_add(1, Ordering::Relaxed);
            if with_orphans[id] > 0 {
                let parent = scopes[id].parent.expect("the root scope always returns");
                with_orphans[parent] += 1;
            }
        }
    }
    for (id, stats) in scopes.iter().enumerate() {
        if let Some(reported) = *lock(&stats.returned) {
            prop_assert_eq!(
                reported,
                with_orphans[id],
                "scope-{} reported {} failures, {} happened in it",
                id,
                reported,
                with_orphans[id]
            );
        }
    }

    // Recursively, every leaf failure is in the root's result.
    let leaves = case.leaves.load(Ordering::SeqCst);
    let reported = match &result {
        Ok(()) => 0,
        Err(error) => count_leaves(error),
    };
    prop_assert_eq!(
        reported,
        leaves,
        "the root reports {} leaf failures, {} happened",
        reported,
        leaves
    );

    coverage.cases.fetch_add(1, Ordering::Relaxed);
    coverage
        .failed_roots
        .fetch_add(usize::from(result.is_err()), Ordering::Relaxed);
    coverage
        .nested_scopes
        .fetch_add(scopes.len() - 1, Ordering::Relaxed);
    coverage.leaf_failures.fetch_add(leaves, Ordering::Relaxed);
    coverage.reasons_checked.fetch_add(
        case.reasons_checked.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    coverage.explicit_cancels.fetch_add(
        case.explicit_cancels_seen.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    coverage
        .cleanups
        .fetch_add(lock(&case.cleanups).len(), Ordering::Relaxed);
    coverage
        .tasks
        .fetch_add(case.tasks.load(Ordering::Relaxed), Ordering::Relaxed);
    Ok(())
}

#[test]
fn random_task_trees_keep_structure() {
    quiet_expected_panics();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2000);
    let config = Config {
        cases,
        // Integration tests have no `lib.rs` next to them for proptest to
        // find; a failing case is printed (shrunk) instead of saved.
        failure_persistence: None,
        ..Config::default()
    };
    let coverage = Coverage::default();
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&tree_strategy(), |spec| check_tree(spec, &coverage));
    println!(
        "{cases} cases in {:?}; coverage: {coverage:#?}",
        started.elapsed()
    );
    if let Err(error) = result {
        panic!("{error}");
    }

    // The generator must keep exercising what the properties are about.
    if cases >= 1000 {
        let ran = coverage.cases.load(Ordering::Relaxed);
        for (what, count) in [
            (
                "failed roots",
                coverage.failed_roots.load(Ordering::Relaxed),
            ),
            (
                "orphaned scopes",
                coverage.orphaned_scopes.load(Ordering::Relaxed),
            ),
            (
                "nested scopes",
                coverage.nested_scopes.load(Ordering::Relaxed),
            ),
            (
                "leaf failures",
                coverage.leaf_failures.load(Ordering::Relaxed),
            ),
            (
                "cancel reasons",
                coverage.reasons_checked.load(Ordering::Relaxed),
            ),
            (
                "explicit cancels",
                coverage.explicit_cancels.load(Ordering::Relaxed),
            ),
            ("cleanups", coverage.cleanups.load(Ordering::Relaxed)),
        ] {
            assert!(count >= ran / 20, "only {count} {what} in {ran} cases");
        }
    }
}
