//! How a `#[scoped]` fn hands its scope's failure to its caller, chosen from
//! the fn's return type by the type checker rather than by its spelling.
//!
//! Not public API: `#[scoped]` expands into
//!
//! ```text
//! match (&&&&&Scoped::<ReturnType>::new()).kind().checked().run(builder, body).await {
//!     Ok(value) => value,
//!     Err(failure) => failure.raise(),
//! }
//! ```
//!
//! `kind()` is picked by autoref dispatch on `Scoped<ReturnType>`, the most
//! specific impl first, so that a type alias (`type Reply<T> = Result<T,
//! MyError>`) is recognised as the `Result` it is:
//!
//! 1. `Result<T, E>` with `E: Display`, 2. with `E: Debug`, 3. any other
//!    `Result<T, E>`: failures arrive as `Err(E::from(ScopeError))`, and a
//!    body that returns `Err` cancels the remaining children with a reason
//!    that shows the error (through `Display`, else `Debug`, else without);
//! 4. `()`: a failure is raised, a scope that cancelled itself returns;
//! 5. anything else: a failure, or a cancellation that leaves no value, is
//!    raised.
//!
//! "Raised" means [`ScopeFailure::raise`], called by the expansion at the
//! user's fn, so that a panic points there.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;

use crate::error::ScopeError;
use crate::local::{LocalScope, NonSend, SendBody, Sendable};
use crate::scope::{Ended, MapEnded, Scope, ScopeBuilder};

/// A `#[scoped]` fn's return type, to dispatch on (see the module docs).
pub struct Scoped<T>(PhantomData<fn() -> T>);

impl<T> Scoped<T> {
    /// The dispatch value for the return type `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Scoped(PhantomData)
    }
}

impl<T> fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scoped")
    }
}

/// A `Result` whose error is `Display`.
pub trait ResultDisplay<T, E> {
    /// How the fn reports failures.
    fn kind(&self) -> ResultKind<T, E>;
}

/// A `Result` whose error is `Debug` only.
pub trait ResultDebug<T, E> {
    /// How the fn reports failures.
    fn kind(&self) -> ResultKind<T, E>;
}

/// A `Result` whose error shows nothing.
pub trait ResultOpaque<T, E> {
    /// How the fn reports failures.
    fn kind(&self) -> ResultKind<T, E>;
}

/// `()`.
pub trait Unit {
    /// How the fn reports failures.
    fn kind(&self) -> UnitKind;
}

/// Any other type.
pub trait Value<T> {
    /// How the fn reports failures.
    fn kind(&self) -> ValueKind<T>;
}

// Probing a method on `&&&&&Scoped<T>` tries `Self = &&&&Scoped<T>` first,
// then `&&&Scoped<T>`, and so on down to `Scoped<T>`: the impls below are
// in that order of preference.

impl<T, E: fmt::Display> ResultDisplay<T, E> for &&&&Scoped<Result<T, E>> {
    fn kind(&self) -> ResultKind<T, E> {
        ResultKind::new(|error| Some(error.to_string()))
    }
}

impl<T, E: fmt::Debug> ResultDebug<T, E> for &&&Scoped<Result<T, E>> {
    fn kind(&self) -> ResultKind<T, E> {
        ResultKind::new(|error| Some(format!("{error:?}")))
    }
}

impl<T, E> ResultOpaque<T, E> for &&Scoped<Result<T, E>> {
    fn kind(&self) -> ResultKind<T, E> {
        ResultKind::new(|_| None)
    }
}

impl Unit for &Scoped<()> {
    fn kind(&self) -> UnitKind {
        UnitKind
    }
}

impl<T> Value<T> for Scoped<T> {
    fn kind(&self) -> ValueKind<T> {
        ValueKind(PhantomData)
    }
}

/// What a `#[scoped]` fn's error type needs: to receive its children's
/// failures.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a child's failure out of this `#[scoped]` fn",
    label = "a child's failure is returned as `Err({Self}::from(ScopeError))`",
    note = "implement `From<tethered::ScopeError>` for `{Self}`, or return `Result<_, tethered::ScopeError>` (`Box<dyn Error + Send + Sync>` and `anyhow::Error` work as they are)"
)]
pub trait FromScopeError: From<ScopeError> {}

impl<E: From<ScopeError>> FromScopeError for E {}

/// A fn returning `Result<T, E>`.
#[allow(missing_debug_implementations)]
pub struct ResultKind<T, E> {
    describe: fn(&E) -> Option<String>,
    value: PhantomData<fn() -> T>,
}

impl<T, E> ResultKind<T, E> {
    fn new(describe: fn(&E) -> Option<String>) -> Self {
        ResultKind {
            describe,
            value: PhantomData,
        }
    }

    /// Checks that `E` can carry the scope's failure. A step of its own,
    /// returning a plain value: a bound on the future-returning `run` would
    /// be checked (and reported) again where its future is awaited.
    pub fn checked(self) -> ResultRun<T, E>
    where
        E: FromScopeError,
    {
        ResultRun {
            describe: self.describe,
            convert: E::from,
            value: PhantomData,
        }
    }
}

/// A fn returning `Result<T, E>`, `E` checked.
#[allow(missing_debug_implementations)]
pub struct ResultRun<T, E> {
    describe: fn(&E) -> Option<String>,
    convert: fn(ScopeError) -> E,
    value: PhantomData<fn() -> T>,
}

impl<T, E> ResultRun<T, E> {
    /// Runs the fn's body in its scope: children's failures arrive as
    /// `Err(E::from(ScopeError))`; a body that returns `Err` first cancels
    /// the remaining children, and its own error is the one returned
    /// (failures of children it interrupted are logged).
    #[track_caller]
    pub fn run<F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<Result<T, E>, ScopeFailure>>
    where
        F: AsyncFnOnce(&Scope) -> Result<T, E>,
    {
        let (describe, map) = self.parts();
        MapEnded::new(builder.run_at(Location::caller(), body, describe), map)
    }

    /// [`run`](Self::run) for a body with local children that are `Send`:
    /// its future comes boxed (see [`Scope::run_local`]).
    #[track_caller]
    pub fn run_local<'env, F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<Result<T, E>, ScopeFailure>>
    where
        F: for<'s> FnOnce(&'s LocalScope<'env, Sendable>) -> SendBody<'s, Result<T, E>>,
    {
        let (describe, map) = self.parts();
        MapEnded::new(
            builder.run_local_at(Location::caller(), body, describe),
            map,
        )
    }

    /// [`run`](Self::run) for a body with local children that may be
    /// `!Send`.
    #[track_caller]
    pub fn run_local_non_send<'env, F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<Result<T, E>, ScopeFailure>>
    where
        F: AsyncFnOnce(&LocalScope<'env, NonSend>) -> Result<T, E>,
    {
        let (describe, map) = self.parts();
        MapEnded::new(builder.run_at(Location::caller(), body, describe), map)
    }

    /// What describes the body's `Err` (the reason its children are
    /// cancelled with), and what makes the scope's end the fn's result.
    #[allow(clippy::type_complexity)]
    fn parts(
        self,
    ) -> (
        impl FnOnce(&Result<T, E>) -> Option<String>,
        impl FnOnce(Ended<Result<T, E>>) -> Result<Result<T, E>, ScopeFailure>,
    ) {
        let ResultRun {
            describe, convert, ..
        } = self;
        let describe = move |value: &Result<T, E>| {
            let error = value.as_ref().err()?;
            Some(match describe(error) {
                Some(error) => format!("the body returned an error: {error}"),
                None => "the body returned an error".to_owned(),
            })
        };
        let map = move |ended| {
            Ok(match ended {
                Ended::Clean(value, _) => value,
                Ended::Failed {
                    value: Some(Err(error)),
                    error: scope_error,
                } => {
                    tracing::warn!(
                        target: "tethered::scope",
                        error = %scope_error,
                        "failures while the scope unwound from its body's error",
                    );
                    Err(error)
                }
                Ended::Failed { error, .. } => Err(convert(error)),
            })
        };
        (describe, map)
    }
}

/// A fn returning `()`.
#[derive(Debug)]
pub struct UnitKind;

impl UnitKind {
    /// Nothing to check.
    pub fn checked(self) -> Self {
        self
    }

    /// Runs the fn's body in its scope: a failure is handed back to be
    /// raised; a scope cancelled by its own `cancel` just returns.
    #[track_caller]
    pub fn run<F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<(), ScopeFailure>>
    where
        F: AsyncFnOnce(&Scope),
    {
        MapEnded::new(
            builder.run_at(Location::caller(), body, |_| None),
            UnitKind::map,
        )
    }

    /// [`run`](Self::run) with `Send` local children.
    #[track_caller]
    pub fn run_local<'env, F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<(), ScopeFailure>>
    where
        F: for<'s> FnOnce(&'s LocalScope<'env, Sendable>) -> SendBody<'s, ()>,
    {
        MapEnded::new(
            builder.run_local_at(Location::caller(), body, |_| None),
            UnitKind::map,
        )
    }

    /// [`run`](Self::run) with local children that may be `!Send`.
    #[track_caller]
    pub fn run_local_non_send<'env, F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<(), ScopeFailure>>
    where
        F: AsyncFnOnce(&LocalScope<'env, NonSend>),
    {
        MapEnded::new(
            builder.run_at(Location::caller(), body, |_| None),
            UnitKind::map,
        )
    }

    fn map(ended: Ended<()>) -> Result<(), ScopeFailure> {
        match ended {
            Ended::Clean((), _) => Ok(()),
            // A scope that cancelled itself has nothing to raise.
            Ended::Failed { error, .. } if error.is_cancelled() => Ok(()),
            Ended::Failed { error, .. } => Err(ScopeFailure(error)),
        }
    }
}

/// A fn returning any other type.
#[allow(missing_debug_implementations)]
pub struct ValueKind<T>(PhantomData<fn() -> T>);

impl<T> ValueKind<T> {
    /// The kind for an `impl Trait` return type, which cannot be named.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ValueKind(PhantomData)
    }

    /// Nothing to check.
    pub fn checked(self) -> Self {
        self
    }

    /// Runs the fn's body in its scope: a failure, or a cancellation that
    /// leaves no value to return, is handed back to be raised.
    #[track_caller]
    pub fn run<F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<T, ScopeFailure>>
    where
        F: AsyncFnOnce(&Scope) -> T,
    {
        MapEnded::new(
            builder.run_at(Location::caller(), body, |_| None),
            ValueKind::map,
        )
    }

    /// [`run`](Self::run) with `Send` local children.
    #[track_caller]
    pub fn run_local<'env, F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<T, ScopeFailure>>
    where
        F: for<'s> FnOnce(&'s LocalScope<'env, Sendable>) -> SendBody<'s, T>,
    {
        MapEnded::new(
            builder.run_local_at(Location::caller(), body, |_| None),
            ValueKind::map,
        )
    }

    /// [`run`](Self::run) with local children that may be `!Send`.
    #[track_caller]
    pub fn run_local_non_send<'env, F>(
        self,
        builder: ScopeBuilder,
        body: F,
    ) -> impl Future<Output = Result<T, ScopeFailure>>
    where
        F: AsyncFnOnce(&LocalScope<'env, NonSend>) -> T,
    {
        MapEnded::new(
            builder.run_at(Location::caller(), body, |_| None),
            ValueKind::map,
        )
    }

    fn map(ended: Ended<T>) -> Result<T, ScopeFailure> {
        match ended {
            Ended::Clean(value, _) => Ok(value),
            Ended::Failed { error, .. } => Err(ScopeFailure(error)),
        }
    }
}

/// The failure of a `#[scoped]` fn that has no `Err` to return it in.
pub struct ScopeFailure(ScopeError);

impl ScopeFailure {
    /// Raises the failure as a panic, at the caller (the `#[scoped]` fn).
    ///
    /// Inside a tethered task or scope, the panic carries the
    /// [`ScopeError`] itself and skips the panic hook: the enclosing scope
    /// catches it, records it as a failure whose payload downcasts to the
    /// `ScopeError`, and reports it with the rest. Anywhere else nothing of
    /// tethered's will catch it, so it is an ordinary panic whose message is
    /// the whole error, located at the fn.
    #[track_caller]
    pub fn raise(self) -> ! {
        if crate::node::current().is_some() {
            std::panic::resume_unwind(Box::new(self.0));
        }
        panic!("{}", self.0)
    }
}

impl fmt::Debug for ScopeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScopeFailure").field(&self.0).finish()
    }
}
