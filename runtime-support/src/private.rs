//! Not public API. What the code expanded by `tethered-macros` calls.
//!
//! Everything here may change in any release; only the macros use it.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::future::Future;

pub use tokio;

/// `supervise!` itself, which `tethered::supervise!` calls with
/// `crate = $crate;` before the user's entries.
pub use tethered_macros::supervise as supervise_impl;

use crate::error::TaskError;
use crate::local::{
    FallibleChildOf, Holds, LocalChildOf, LocalMode, LocalScope, SendBody, fallible_split_with,
    infallible_split,
};
use crate::node::NodeKind;
use crate::scope::{Scope, ScopeBuilder};
use crate::supervisor::ChildOutput;
use crate::task::TaskHandle;

pub use crate::entry::{MainOutput, TestOutput, main, main_local, test, test_local};
pub use crate::never::{HasOutput, Never};
pub use crate::scoped_fn::{
    FromScopeError, ResultDebug, ResultDisplay, ResultKind, ResultOpaque, ResultRun, ScopeFailure,
    Scoped, Unit, UnitKind, Value, ValueKind,
};
pub use crate::wait::Recorded;

/// Which kind of child `spawn!` / `shield!` start.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `spawn!`
    Task,
    /// `shield!`
    Shield,
}

impl Kind {
    fn node_kind(self) -> NodeKind {
        match self {
            Kind::Task => NodeKind::Task,
            Kind::Shield => NodeKind::Shield,
        }
    }
}

/// A pending `spawn!`: the future and where it goes. Which trait's
/// `spawn_task` method applies depends on the future's output (autoref
/// specialization, called as `(&&spawn).spawn_task()`): a `Result` whose
/// error is `Display` picks [`SpawnFallible`], one whose error is only
/// `Debug` picks [`SpawnFallibleDebug`] (both make `Err` fail the scope);
/// anything else picks [`SpawnAny`]. So `spawn!` needs no annotation.
pub struct Spawn<'s, F> {
    scope: &'s Scope,
    kind: Kind,
    name: Option<Cow<'static, str>>,
    fut: Cell<Option<F>>,
}

impl<'s, F> Spawn<'s, F> {
    /// Wraps one `spawn!` call.
    pub fn new(scope: &'s Scope, kind: Kind, name: Option<Cow<'static, str>>, fut: F) -> Self {
        Spawn {
            scope,
            kind,
            name,
            fut: Cell::new(Some(fut)),
        }
    }

    /// Starts a task whose `Err` fails the scope, shown through `erase`.
    #[track_caller]
    fn spawn_fallible<T, E>(
        &self,
        erase: fn(std::sync::Arc<E>) -> TaskError,
    ) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + Sync + 'static,
    {
        match self.parts() {
            Some((fut, name)) => {
                self.scope
                    .spawn_fallible_task(self.kind.node_kind(), name, fut, erase)
            }
            None => already_spawned(),
        }
    }

    /// Starts a task whose future never returns (`spawn!` of an async block
    /// that can only loop, panic or wait forever), with no dispatch on its
    /// output: the type checker learns that it is `!` only at the very end,
    /// too late for the dispatch.
    #[track_caller]
    pub fn spawn_never(&self) -> TaskHandle<'s, Never>
    where
        F: Future<Output = Never> + Send + 'static,
    {
        match self.parts() {
            Some((fut, name)) => self.scope.spawn_task(self.kind.node_kind(), name, fut),
            None => already_spawned(),
        }
    }

    fn parts(&self) -> Option<(F, Option<Cow<'static, str>>)> {
        let fut = self.fut.take()?;
        // The name is only read once, with the future.
        let name = self.name.clone();
        Some((fut, name))
    }
}

impl<F> fmt::Debug for Spawn<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawn")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

// Which impl applies is decided by the shape of the future's output alone
// (a `Result`, and whether its error shows); what spawning needs (`Send`,
// `'static`) is asked of the chosen method. A future that is not `Send` is
// then reported by the compiler as such ("future cannot be sent between
// threads safely", with the value held across an `.await`), instead of as
// three impls that do not apply.

/// `spawn!` of a future whose output is a `Result`: `Err` fails the scope.
pub trait SpawnFallible<'s, F, T, E> {
    /// Starts the task.
    fn spawn_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + Sync + 'static;
}

/// `spawn!` of a future whose output is a `Result` whose error has only
/// `Debug`: `Err` fails the scope, shown through `Debug`.
pub trait SpawnFallibleDebug<'s, F, T, E> {
    /// Starts the task.
    fn spawn_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + Sync + 'static;
}

/// `spawn!` of any other future: it fails only by panicking.
pub trait SpawnAny<'s, F: Future> {
    /// Starts the task.
    fn spawn_task(&self) -> TaskHandle<'s, F::Output>
    where
        F: Send + 'static,
        F::Output: Send + 'static;
}

// Method probing on `&&Spawn` tries `Self = &Spawn`, then `Self = &&Spawn`,
// then `Self = Spawn`: the impls below are in that order of preference.

impl<'s, F, T, E> SpawnFallible<'s, F, T, E> for &Spawn<'s, F>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Display + fmt::Debug,
{
    #[track_caller]
    fn spawn_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + Sync + 'static,
    {
        self.spawn_fallible(TaskError::new::<E>)
    }
}

impl<'s, F, T, E> SpawnFallibleDebug<'s, F, T, E> for &&Spawn<'s, F>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Debug,
{
    #[track_caller]
    fn spawn_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + Sync + 'static,
    {
        self.spawn_fallible(TaskError::from_debug::<E>)
    }
}

impl<'s, F: Future> SpawnAny<'s, F> for Spawn<'s, F> {
    #[track_caller]
    fn spawn_task(&self) -> TaskHandle<'s, F::Output>
    where
        F: Send + 'static,
        F::Output: Send + 'static,
    {
        match self.parts() {
            Some((fut, name)) => self.scope.spawn_task(self.kind.node_kind(), name, fut),
            None => already_spawned(),
        }
    }
}

/// A pending `spawn_local!`: the future and the local scope it goes to,
/// dispatched on the future's output as [`Spawn`] is (called as
/// `(&&spawn).spawn_local_task()`).
pub struct SpawnLocal<'s, 'env, M: LocalMode, F> {
    scope: &'s LocalScope<'env, M>,
    name: Option<Cow<'static, str>>,
    fut: Cell<Option<F>>,
}

impl<'s, 'env, M: LocalMode, F> SpawnLocal<'s, 'env, M, F> {
    /// Wraps one `spawn_local!` call.
    pub fn new(scope: &'s LocalScope<'env, M>, name: Option<Cow<'static, str>>, fut: F) -> Self {
        SpawnLocal {
            scope,
            name,
            fut: Cell::new(Some(fut)),
        }
    }

    fn parts(&self) -> (F, Option<Cow<'static, str>>) {
        match self.fut.take() {
            Some(fut) => (fut, self.name.clone()),
            None => already_spawned(),
        }
    }
}

impl<M: LocalMode, F> fmt::Debug for SpawnLocal<'_, '_, M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnLocal")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `spawn_local!` of a future whose output is a `Result` whose error
/// shows: `Err` fails the scope.
pub trait SpawnLocalFallible<'s, 'env, M: LocalMode, F, T, E> {
    /// Starts the local child.
    fn spawn_local_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + 'env,
        M: Holds<'env, FallibleChildOf<F, T, E>>;
}

/// `spawn_local!` of a future whose output is a `Result` whose error has
/// only `Debug`.
pub trait SpawnLocalFallibleDebug<'s, 'env, M: LocalMode, F, T, E> {
    /// Starts the local child.
    fn spawn_local_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + 'env,
        M: Holds<'env, FallibleChildOf<F, T, E>>;
}

/// `spawn_local!` of any other future: it fails only by panicking.
pub trait SpawnLocalAny<'s, 'env, M: LocalMode, F: Future> {
    /// Starts the local child.
    fn spawn_local_task(&self) -> TaskHandle<'s, F::Output>
    where
        F: 'env,
        M: Holds<'env, LocalChildOf<F>>;
}

impl<'s, 'env, M, F, T, E> SpawnLocalFallible<'s, 'env, M, F, T, E> for &SpawnLocal<'s, 'env, M, F>
where
    M: LocalMode,
    F: Future<Output = Result<T, E>>,
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    #[track_caller]
    fn spawn_local_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + 'env,
        M: Holds<'env, FallibleChildOf<F, T, E>>,
    {
        let (fut, name) = self.parts();
        let scope: &'s LocalScope<'env, M> = self.scope;
        scope.start(name, fut, fallible_split_with(TaskError::new::<E>))
    }
}

impl<'s, 'env, M, F, T, E> SpawnLocalFallibleDebug<'s, 'env, M, F, T, E>
    for &&SpawnLocal<'s, 'env, M, F>
where
    M: LocalMode,
    F: Future<Output = Result<T, E>>,
    E: fmt::Debug + Send + Sync + 'static,
{
    #[track_caller]
    fn spawn_local_task(&self) -> TaskHandle<'s, T, E>
    where
        F: Future<Output = Result<T, E>> + 'env,
        M: Holds<'env, FallibleChildOf<F, T, E>>,
    {
        let (fut, name) = self.parts();
        let scope: &'s LocalScope<'env, M> = self.scope;
        scope.start(name, fut, fallible_split_with(TaskError::from_debug::<E>))
    }
}

impl<'s, 'env, M: LocalMode, F: Future> SpawnLocalAny<'s, 'env, M, F>
    for SpawnLocal<'s, 'env, M, F>
{
    #[track_caller]
    fn spawn_local_task(&self) -> TaskHandle<'s, F::Output>
    where
        F: 'env,
        M: Holds<'env, LocalChildOf<F>>,
    {
        let (fut, name) = self.parts();
        let scope: &'s LocalScope<'env, M> = self.scope;
        scope.start(name, fut, infallible_split())
    }
}

/// A `Send` local scope's body, boxed, its output named (so that `?` in it
/// knows what it returns).
pub fn boxed<'a, T, F>(body: F) -> SendBody<'a, T>
where
    F: Future<Output = T> + Send + 'a,
{
    Box::pin(body)
}

fn already_spawned() -> ! {
    // The expansion calls `spawn_task` exactly once per `Spawn`.
    unreachable!("a `spawn!` expansion spawned twice")
}

/// Stands in for a `spawn!` the macro rejected (with a compile error), so
/// that the rest of the body type-checks. Never runs: the build has failed.
pub fn unavailable() -> TaskHandle<'static, ()> {
    unreachable!("stands in for a rejected `spawn!`; the build has failed")
}

/// Stands in for a `scope!()` the macro rejected where the scope cannot be
/// borrowed. Never runs: the build has failed.
pub fn unavailable_scope() -> &'static Scope {
    unreachable!("stands in for a rejected `scope!()`; the build has failed")
}

/// What a `#[periodic]` run returned, to be turned into what the schedule
/// counts: `()` or `Result<(), E>` with a `Display` error, or one with only
/// `Debug` (called as `(&&Finished::new(out)).finish()`, autoref dispatch
/// as for [`Spawn`]).
pub struct Finished<T>(Cell<Option<T>>);

impl<T> fmt::Debug for Finished<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finished").finish_non_exhaustive()
    }
}

impl<T> Finished<T> {
    /// Wraps a run's output.
    pub fn new(output: T) -> Self {
        Finished(Cell::new(Some(output)))
    }
}

/// A run's `Result` whose error is `Display`.
pub trait FinishDisplay {
    /// The run's result.
    fn finish(&self) -> Result<(), TaskError>;
}

/// A run's `Result` whose error has only `Debug`.
pub trait FinishDebug {
    /// The run's result.
    fn finish(&self) -> Result<(), TaskError>;
}

/// A run that returned `()`.
pub trait FinishUnit {
    /// The run's result.
    fn finish(&self) -> Result<(), TaskError>;
}

impl<E> FinishDisplay for &Finished<Result<(), E>>
where
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    fn finish(&self) -> Result<(), TaskError> {
        match self.0.take() {
            Some(Err(error)) => Err(TaskError::new(std::sync::Arc::new(error))),
            _ => Ok(()),
        }
    }
}

impl<E> FinishDebug for &&Finished<Result<(), E>>
where
    E: fmt::Debug + Send + Sync + 'static,
{
    fn finish(&self) -> Result<(), TaskError> {
        match self.0.take() {
            Some(Err(error)) => Err(TaskError::from_debug(std::sync::Arc::new(error))),
            _ => Ok(()),
        }
    }
}

impl FinishUnit for Finished<()> {
    fn finish(&self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// An argument of a `#[periodic]` fn: every run gets its own copy.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Clone`, so it cannot be an argument of a `#[periodic]` fn",
    label = "each periodic run gets its own copy of this argument",
    note = "derive or implement `Clone`, or pass an `Arc` of it"
)]
pub trait RunArgument: Clone {}

impl<T: Clone> RunArgument for T {}

/// A copy of a `#[periodic]` fn's argument for one run.
pub fn copy_for_run<T: RunArgument>(argument: &T) -> T {
    argument.clone()
}

/// A builder for a `#[scoped]` fn's scope.
pub fn builder() -> ScopeBuilder {
    ScopeBuilder::new()
}

/// What a `supervise!` child's expression makes: a future the supervisor
/// runs as a task, made again on every restart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a future, so it cannot be a supervised child",
    label = "this makes a `{Self}`, not a future",
    note = "a child is the expression that makes its future, evaluated again on every restart, like `worker(db.clone())`"
)]
pub trait SupervisedChild {
    /// The future, its output made a [`ChildResult`].
    fn into_child(self) -> ChildFuture;
}

impl<F> SupervisedChild for F
where
    F: Future + Send + 'static,
    F::Output: ChildOutput,
{
    fn into_child(self) -> ChildFuture {
        Box::pin(async move { ChildResult(self.await.into_child_result()) })
    }
}

/// A `supervise!` child's future, its type erased: its type, or its
/// mistake, stops at [`Supervise::child`], so that the mistake is reported
/// once, where the child is written.
pub type ChildFuture = std::pin::Pin<Box<dyn Future<Output = ChildResult> + Send>>;

/// What a [`ChildFuture`] returns: the child's result, passed through.
#[derive(Debug)]
pub struct ChildResult(Result<(), TaskError>);

impl ChildOutput for ChildResult {
    fn into_child_result(self) -> Result<(), TaskError> {
        self.0
    }
}

/// What `supervise!` calls its children's expressions through.
///
/// A type, not a module: the expansion calls `<$crate::__private::Supervise>::child(…)`,
/// a call that starts with `<`, written at the child. A call that started
/// with `$crate` would be located in the macro, and so would the errors
/// about it and about the closure around it.
#[derive(Debug)]
pub enum Supervise {}

impl Supervise {
    /// A `supervise!` child's future, checked where the child is written.
    pub fn child<F: SupervisedChild>(child: F) -> ChildFuture {
        child.into_child()
    }
}
