//! `spawn!`, `shield!`, `spawn_blocking!`, `defer!` and `scope!`.
//!
//! Inside a `#[scoped]` fn (or `#[tethered::main]`, `#[tethered::test]`) the
//! attribute rewrites these into calls on the fn's scope. These definitions
//! are what is left anywhere else: a compile error that says where they
//! belong.

/// Starts a child task of the enclosing `#[scoped]` fn's scope and returns
/// its [`TaskHandle`](crate::TaskHandle).
///
/// `spawn!(future)` or `spawn!("name", future)`. A future whose output is a
/// `Result` fails the scope on `Err` (when the error type is
/// `Display + Debug + Send + Sync + 'static`); any other future fails it
/// only by panicking. An `async` block that never returns (ending in a
/// `loop` with no `break`, a `panic!` or `pending().await`) is spawned as a
/// future of `!`. Usable only inside a [`macro@crate::scoped`] fn.
#[macro_export]
macro_rules! spawn {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`spawn!` only works inside a `#[tethered::scoped]` fn (or `#[tethered::main]`, `#[tethered::test]`); add the attribute to the enclosing async fn, or call `scope.spawn(…)` on a `Scope`"
        )
    };
}

/// Starts a shielded child of the enclosing `#[scoped]` fn's scope: hard
/// cancellation does not reach it, and the scope waits for it.
///
/// `shield!(future)` or `shield!("name", future)`. Usable only inside a
/// [`macro@crate::scoped`] fn.
#[macro_export]
macro_rules! shield {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`shield!` only works inside a `#[tethered::scoped]` fn (or `#[tethered::main]`, `#[tethered::test]`); add the attribute to the enclosing async fn, or call `scope.shield(…)` on a `Scope`"
        )
    };
}

/// Runs a blocking closure on tokio's blocking pool as a child the
/// enclosing `#[scoped]` fn's scope waits for.
///
/// `spawn_blocking!(|| …)` or `spawn_blocking!("name", || …)`. Usable only
/// inside a [`macro@crate::scoped`] fn.
#[macro_export]
macro_rules! spawn_blocking {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`spawn_blocking!` only works inside a `#[tethered::scoped]` fn (or `#[tethered::main]`, `#[tethered::test]`); add the attribute to the enclosing async fn, or call `scope.spawn_blocking(…)` on a `Scope`"
        )
    };
}

/// Registers async cleanup that runs when the enclosing `#[scoped]` fn's
/// scope ends, however it ends.
///
/// `defer!(async move { … })`. Usable only inside a
/// [`macro@crate::scoped`] fn.
#[macro_export]
macro_rules! defer {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`defer!` only works inside a `#[tethered::scoped]` fn (or `#[tethered::main]`, `#[tethered::test]`); add the attribute to the enclosing async fn, or call `scope.defer(…)` on a `Scope`"
        )
    };
}

/// The [`Scope`](crate::Scope) of the enclosing `#[scoped]` fn, to cancel
/// it, hand out a [`ScopeHandle`](crate::ScopeHandle), and so on.
///
/// `scope!()`. Usable only inside a [`macro@crate::scoped`] fn.
#[macro_export]
macro_rules! scope {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`scope!()` only works inside a `#[tethered::scoped]` fn (or `#[tethered::main]`, `#[tethered::test]`); add the attribute to the enclosing async fn"
        )
    };
}
