//! [`Never`]: the type of a future that never returns, `!`, by a name
//! stable Rust accepts in an `impl`.
//!
//! `async { loop { … } }` — a heartbeat, an accept loop — has the output
//! `!`. A supervised child, a cleanup or a periodic run may be such a
//! future: it ends only when it is cancelled. The traits their outputs must
//! implement are implemented for `!` through this alias (the `never-say-
//! never` technique: `!` is stable as a return type, not yet as a name).

/// Names the output of a function type. (Public, in `__private`, because it
/// appears in the impls above.)
pub trait HasOutput {
    /// The output.
    type Output;
}

impl<T> HasOutput for fn() -> T {
    type Output = T;
}

/// `!`, the output of a future that never returns.
pub type Never = <fn() -> ! as HasOutput>::Output;
