//! The queue the worker runs on, whichever store holds it: SQLite (one
//! worker at a time, under the instance lock) or PostgreSQL (many workers
//! at once). One interface, the same promises: a claim is fenced by its
//! claim number, a lease is renewed per job and says when it is lost, an
//! interrupted job goes back without using up an attempt.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::pg::PgQueue;
use super::queue::{Counts, DbError, Queue};

/// A job a worker has claimed: what it needs to write about it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Its row id.
    pub id: i64,
    /// What to do.
    pub payload: String,
    /// The fencing token of this claim.
    pub claim: i64,
    /// Attempts used up before this one (failures and lost leases).
    pub attempts: i32,
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// The lease is ours, until `lease` from now.
    Renewed,
    /// The lease is gone: the job was rescued and maybe claimed again, or
    /// it ended, or its row changed.
    Lost(LostLease),
}

/// Why a lease is no longer the caller's: who holds the job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostLease {
    /// The job.
    pub id: i64,
    /// Its state now (`None` when the row is gone).
    pub state: Option<String>,
    /// Its owner now, if any.
    pub owner: Option<String>,
    /// Its claim number now: a worker may hold the job again itself,
    /// under a newer claim than the one that lost it.
    pub claim: Option<i64>,
}

impl fmt::Display for LostLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease lost: job {}", self.id)?;
        match (&self.state, &self.owner) {
            (_, Some(owner)) => match self.claim {
                Some(claim) => write!(f, " now held by {owner} (claim {claim})"),
                None => write!(f, " now held by {owner}"),
            },
            (Some(state), None) => write!(f, " is {state} now"),
            (None, None) => f.write_str(" is gone"),
        }
    }
}

/// Where the queue is: a SQLite file or a PostgreSQL database.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file (`--db PATH`).
    Sqlite(Arc<Queue>),
    /// A PostgreSQL database (`--db postgres://…`).
    Postgres(PgQueue),
}

/// Whether `db` names a PostgreSQL database rather than a file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `db` as it may be printed: a URL's password hidden.
pub fn shown(db: &str) -> String {
    if !is_postgres_url(db) {
        return db.to_owned();
    }
    // postgres://user:password@host/…: the password is between the first
    // `:` after the scheme and the last `@` before the path.
    let (scheme, rest) = db.split_once("://").unwrap_or(("", db));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => db.to_owned(),
    }
}

impl Store {
    /// Opens the queue at `db`: a `postgres://` URL (with a pool of up to
    /// `connections`), or a SQLite file (with `init`, in a database of
    /// another program's too).
    pub async fn open(db: &str, init: bool, connections: usize) -> Result<Store, DbError> {
        if is_postgres_url(db) {
            return Ok(Store::Postgres(PgQueue::connect(db, connections).await?));
        }
        let path = Path::new(db);
        let queue = if init {
            Queue::open_adding_tables(path)?
        } else {
            Queue::open(path)?
        };
        Ok(Store::Sqlite(Arc::new(queue)))
    }

    /// Adds `count` queued jobs; returns the new total.
    pub async fn enqueue(&self, count: u64) -> Result<u64, DbError> {
        match self {
            Store::Sqlite(queue) => queue.enqueue(count),
            Store::Postgres(queue) => queue.enqueue(count).await,
        }
    }

    /// Claims up to `limit` jobs for `owner`, leased for `lease`.
    pub async fn take(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, DbError> {
        match self {
            Store::Sqlite(queue) => Ok(queue
                .take(owner, limit, lease)?
                .into_iter()
                .map(|job| Claimed {
                    id: job.id,
                    payload: job.payload,
                    // SQLite's `attempts` counts the takes: the claim number.
                    claim: job.attempts,
                    attempts: 0,
                })
                .collect()),
            Store::Postgres(queue) => queue.take(owner, limit, lease).await,
        }
    }

    /// Extends `job`'s lease to `lease` from now, if `owner` still holds it
    /// under this claim.
    pub async fn renew(
        &self,
        job: &Claimed,
        owner: &str,
        lease: Duration,
    ) -> Result<Renewal, DbError> {
        match self {
            Store::Sqlite(queue) => queue.renew_claim(job, owner, lease),
            Store::Postgres(queue) => queue.renew(job, owner, lease).await,
        }
    }

    /// Marks `job` done, if `owner` still holds it under this claim.
    pub async fn finish(&self, job: &Claimed, owner: &str) -> Result<bool, DbError> {
        match self {
            Store::Sqlite(queue) => queue.finish_claim(job, owner),
            Store::Postgres(queue) => queue.finish(job, owner).await,
        }
    }

    /// Puts an interrupted `job` back at once, attempts unchanged, if
    /// `owner` still holds it under this claim.
    pub async fn release(&self, job: &Claimed, owner: &str) -> Result<bool, DbError> {
        match self {
            Store::Sqlite(queue) => queue.release_claim(job, owner),
            Store::Postgres(queue) => queue.release(job, owner).await,
        }
    }

    /// Returns every job `owner` still holds; says which, by (id, claim).
    pub async fn release_all(&self, owner: &str) -> Result<HashSet<(i64, i64)>, DbError> {
        match self {
            Store::Sqlite(queue) => queue.release_all(owner),
            Store::Postgres(queue) => queue.release_all(owner).await,
        }
    }

    /// How many jobs `owner` holds.
    pub async fn held_by(&self, owner: &str) -> Result<u64, DbError> {
        match self {
            Store::Sqlite(queue) => queue.taken_by(owner),
            Store::Postgres(queue) => queue.held_by(owner).await,
        }
    }

    /// How many jobs are in each state.
    pub async fn counts(&self) -> Result<Counts, DbError> {
        match self {
            Store::Sqlite(queue) => queue.counts(),
            Store::Postgres(queue) => queue.counts().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(shown("./q.sqlite3"), "./q.sqlite3");
        assert_eq!(
            shown("postgres://me@db:5432/jobs"),
            "postgres://me@db:5432/jobs"
        );
        assert_eq!(
            shown("postgres://me:s3cr@t@db:5432/jobs"),
            "postgres://me:***@db:5432/jobs"
        );
    }
}
