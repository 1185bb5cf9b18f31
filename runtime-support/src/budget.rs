//! Shutdown budgets: how long a part of the tree is given to shut down.
//!
//! `#[tethered::main]` gives its tasks `grace + cancel_timeout` after a
//! signal; a supervisor gives its body and dynamic children `grace` (then
//! cancels them) and each static child its own `shutdown` budget. A
//! supervisor nested in one of those needs its whole shutdown to fit, or
//! whatever waits for it gives up first and its report is lost. Each giver
//! records its allowance here, against the node it gives it to, so that a
//! supervisor can tell, as it starts, whether it fits in the nearest one
//! above it, and say so if it does not.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::node::Node;

/// What the code of a node is given to shut down in, and by whom.
#[derive(Debug, Clone)]
pub(crate) struct Allowance {
    /// `None`: as long as it takes.
    pub(crate) budget: Option<Duration>,
    /// Who gives it, and how it adds up: "`main` (grace 10s + cancel
    /// timeout 30s)".
    pub(crate) giver: String,
    /// Whether it is `#[tethered::main]`'s, which speaks on stderr.
    pub(crate) from_main: bool,
}

/// Allowances by node id, each with the token of its registration: a
/// node's id (its address) may be reused once it is freed.
fn allowances() -> &'static Mutex<HashMap<usize, (u64, Allowance)>> {
    static ALLOWANCES: OnceLock<Mutex<HashMap<usize, (u64, Allowance)>>> = OnceLock::new();
    ALLOWANCES.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<usize, (u64, Allowance)>> {
    allowances()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records `allowance` for the code under `node` until the returned guard
/// is dropped.
pub(crate) fn allow(node: &Node, allowance: Allowance) -> Allowed {
    static TOKENS: AtomicU64 = AtomicU64::new(0);
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let id = node.id();
    lock().insert(id, (token, allowance));
    Allowed { id, token }
}

/// The allowance of the nearest node above `node` that has one.
pub(crate) fn allowance_above(node: &Node) -> Option<Allowance> {
    let allowances = lock();
    let mut above = node.parent();
    while let Some(current) = above {
        if let Some((_, allowance)) = allowances.get(&current.id()) {
            return Some(allowance.clone());
        }
        above = current.parent();
    }
    None
}

/// An allowance on record; dropped, it is taken off.
pub(crate) struct Allowed {
    id: usize,
    token: u64,
}

impl Drop for Allowed {
    fn drop(&mut self) {
        let mut allowances = lock();
        if allowances
            .get(&self.id)
            .is_some_and(|(token, _)| *token == self.token)
        {
            allowances.remove(&self.id);
        }
    }
}

impl fmt::Debug for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allowed").finish_non_exhaustive()
    }
}

/// A budget for messages: "12s", or "no limit".
pub(crate) fn show(budget: Option<Duration>) -> String {
    match budget {
        Some(budget) if budget >= crate::deadline::NEVER => "no limit".to_owned(),
        Some(budget) => format!("{budget:?}"),
        None => "no limit".to_owned(),
    }
}
