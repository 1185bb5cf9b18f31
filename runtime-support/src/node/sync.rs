//! The synchronization primitives the node tree is built on: std's, or
//! loom's when the crate is built with `--cfg tethered_loom` so the loom
//! models in `tests/loom.rs` can explore every interleaving of them.

#[cfg(not(tethered_loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

#[cfg(tethered_loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

/// Locks `mutex`, ignoring poisoning: every critical section in the node tree
/// leaves the data consistent before it can panic (it only pushes, pops and
/// flips flags), so a poisoned lock still holds valid data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
