//! `spawn!`, `spawn_local!`, `shield!`, `spawn_blocking!`, `defer!` and
//! `scope!`.
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

/// Starts a local child of the enclosing `#[scoped]` fn's scope and returns
/// its [`TaskHandle`](crate::TaskHandle): a future polled by the scope's own
/// task, which may borrow the fn's arguments and anything else that
/// outlives the scope (see [`LocalScope`](crate::LocalScope)).
///
/// `spawn_local!(future)` or `spawn_local!("name", future)`. A future whose
/// output is a `Result` fails the scope on `Err`, as with `spawn!`. The
/// children must be `Send` (and the fn's future stays `Send`), unless the
/// fn says `#[scoped(send = false)]`: they may then hold `!Send` values, and
/// the fn's future is `!Send`. Usable only inside a
/// [`macro@crate::scoped`] fn.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// struct Index {
///     stop_words: Vec<String>,
/// }
///
/// impl Index {
///     #[tethered::scoped]
///     async fn count(&self, docs: &[String]) -> usize {
///         let handles: Vec<_> = docs
///             .iter()
///             .map(|doc| {
///                 tethered::spawn_local!(async move {
///                     doc.split(' ')
///                         .filter(|word| !self.stop_words.iter().any(|stop| stop == word))
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
/// let index = Index { stop_words: vec!["the".into()] };
/// let docs = vec!["the cat".to_owned(), "a dog".to_owned()];
/// assert_eq!(index.count(&docs).await, 3);
/// # }
/// ```
#[macro_export]
macro_rules! spawn_local {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`spawn_local!` only works inside a `#[tethered::scoped]` fn; add the attribute to the enclosing async fn, or call `scope.spawn_local(…)` on a `LocalScope` (`Scope::run_local`)"
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
