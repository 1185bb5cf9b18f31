//! The single-instance lock: one row, `instance_lock(id = 1, holder, pid,
//! expires)`, in the queue's database.
//!
//! [`held`] runs a future while this process holds the row. It is a
//! `#[tethered::scoped(on_exit = cancel)]` fn:
//!
//! ```text
//! scope `held`                       (on_exit = cancel)
//! ├── task `lock-watchdog`           periodic (every `renew`, overlap skip,
//! │                                  on_stop continue):
//! │                                  pushes `expires` forward
//! ├── (the body: the worker's run)
//! └── defer: DELETE the row          runs after every child has ended
//! ```
//!
//! The order at the exit is the point: the body returns, the scope cancels
//! the watchdog **and joins it**, and only then does the `defer!` delete the
//! row. A watchdog that outlived the delete could write the row back (here
//! it only `UPDATE`s a row it holds, so it could not; but a watchdog written
//! as an upsert would, and the structure makes it impossible either way).
//!
//! The row expires `ttl` after the last extension, so a process that dies
//! without deleting it (SIGKILL, power loss) blocks the next one for at most
//! `ttl`. A stop request (SIGTERM) does not end the watchdog
//! (`on_stop = continue`): the row is renewed for as long as the work runs,
//! graceful shutdown included, and only the scope's cancellation ends it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use tethered::periodic;

use super::queue::{DbError, Queue, context, ms_from_now, now_ms};

/// Who holds (or wants) the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// A name unique to this process run (`worker-<pid>-<start ms>`); also
    /// the `owner` of the jobs it takes.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

impl Holder {
    /// This process.
    pub fn this_process() -> Holder {
        let pid = std::process::id();
        Holder {
            name: format!("worker-{pid}-{}", now_ms()),
            pid,
        }
    }
}

/// Why the lock could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another live process holds it.
    Held {
        /// Its holder name.
        holder: String,
        /// Its pid.
        pid: i64,
        /// How long until the row expires if nobody extends it.
        expires_in: Duration,
    },
    /// The database said no.
    Db(DbError),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held {
                holder,
                pid,
                expires_in,
            } => write!(
                f,
                "the queue is locked by `{holder}` (pid {pid}); its lock expires in {}ms unless renewed",
                expires_in.as_millis()
            ),
            LockError::Db(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for LockError {}

impl From<DbError> for LockError {
    fn from(error: DbError) -> Self {
        LockError::Db(error)
    }
}

/// Takes the lock row for `holder`, valid for `ttl`: fails with
/// [`LockError::Held`] if another holder's row has not expired.
pub fn acquire(queue: &Queue, holder: &Holder, ttl: Duration) -> Result<(), LockError> {
    let mut conn = queue.conn();
    let tx = context(
        "cannot take the lock",
        conn.transaction_with_behavior(TransactionBehavior::Immediate),
    )?;
    let current = context(
        "cannot read the lock",
        tx.query_row(
            "SELECT holder, pid, expires FROM instance_lock WHERE id = 1",
            [],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )
        .optional(),
    )?;
    if let Some((other, pid, expires)) = current {
        let left = expires - now_ms();
        if other != holder.name && left > 0 {
            return Err(LockError::Held {
                holder: other,
                pid,
                expires_in: Duration::from_millis(left.unsigned_abs()),
            });
        }
    }
    context(
        "cannot take the lock",
        tx.execute(
            "INSERT OR REPLACE INTO instance_lock (id, holder, pid, expires) VALUES (1, ?1, ?2, ?3)",
            params![holder.name, holder.pid, ms_from_now(ttl)],
        ),
    )?;
    context("cannot take the lock", tx.commit())?;
    Ok(())
}

/// Pushes the row's expiry to `ttl` from now, if `holder` still holds it.
pub fn extend(queue: &Queue, holder: &Holder, ttl: Duration) -> Result<bool, DbError> {
    let changed = context(
        "cannot extend the lock",
        queue.conn().execute(
            "UPDATE instance_lock SET expires = ?2 WHERE id = 1 AND holder = ?1",
            params![holder.name, ms_from_now(ttl)],
        ),
    )?;
    Ok(changed > 0)
}

/// Deletes the row if `holder` holds it.
pub fn release(queue: &Queue, holder: &Holder) -> Result<(), DbError> {
    context(
        "cannot release the lock",
        queue.conn().execute(
            "DELETE FROM instance_lock WHERE id = 1 AND holder = ?1",
            params![holder.name],
        ),
    )?;
    Ok(())
}

/// The lock's holder and pid, if the row exists (expired or not).
pub fn holder(queue: &Queue) -> Result<Option<(String, i64)>, DbError> {
    context(
        "cannot read the lock",
        queue
            .conn()
            .query_row(
                "SELECT holder, pid FROM instance_lock WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional(),
    )
}

/// Keeps the row alive: every `renew` (shorter than `ttl`), `expires`
/// moves to `ttl` from now. A run that finds the row gone or taken over
/// fails (logged, counted); the schedule goes on. A stop does not end it:
/// only a cancellation does, once the work it guards has ended.
///
/// The schedule [`held`] spawns as its `lock-watchdog` task (public so that
/// the book can show `held` as it is written).
#[periodic(
    every = (renew),
    overlap = skip,
    first = after,
    on_stop = continue,
    name = "lock-watchdog"
)]
pub async fn watchdog(
    queue: Arc<Queue>,
    holder: Holder,
    ttl: Duration,
    renew: Duration,
) -> Result<(), LockError> {
    if extend(&queue, &holder, ttl)? {
        Ok(())
    } else {
        Err(LockError::Db(DbError(format!(
            "the lock row no longer belongs to `{}`",
            holder.name
        ))))
    }
}

/// Why [`held`] ended without a value.
#[derive(Debug)]
pub enum HeldError {
    /// The lock could not be taken.
    Lock(LockError),
    /// The scope failed: the watchdog panicked, or deleting the row failed.
    Scope(tethered::ScopeError),
}

impl fmt::Display for HeldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeldError::Lock(error) => error.fmt(f),
            HeldError::Scope(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for HeldError {}

impl From<tethered::ScopeError> for HeldError {
    fn from(error: tethered::ScopeError) -> Self {
        HeldError::Scope(error)
    }
}

impl From<LockError> for HeldError {
    fn from(error: LockError) -> Self {
        HeldError::Lock(error)
    }
}

/// Runs `work` while `holder` holds the lock row: takes it (or fails with
/// [`LockError::Held`]), keeps it alive with the watchdog (every `renew`,
/// each time to `ttl` from now), and deletes it
/// once `work` is done and the watchdog is gone.
#[tethered::scoped(name = "held", on_exit = cancel)]
pub async fn held<F>(
    queue: Arc<Queue>,
    holder: Holder,
    ttl: Duration,
    renew: Duration,
    work: F,
) -> Result<F::Output, HeldError>
where
    F: Future + Send,
    F::Output: Send,
{
    acquire(&queue, &holder, ttl)?;
    // Registered right after the acquire: it runs however the scope ends,
    // after every child (the watchdog) has ended.
    let releasing = queue.clone();
    let releaser = holder.clone();
    defer!(async move { release(&releasing, &releaser) });
    spawn!(
        "lock-watchdog",
        watchdog(queue.clone(), holder.clone(), ttl, renew)
    );
    Ok(work.await)
}
