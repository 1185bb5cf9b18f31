//! The job queue: one SQLite table, `jobs`, in a WAL-mode database file.
//!
//! ```text
//! jobs(id INTEGER PRIMARY KEY, payload TEXT,
//!      state TEXT CHECK(state IN ('queued','taken','done','failed')),
//!      owner TEXT, lease_expires INTEGER (unix ms), attempts INTEGER,
//!      done_count INTEGER)
//! ```
//!
//! * **take**: one `UPDATE … RETURNING` in an `IMMEDIATE` transaction claims
//!   up to `limit` jobs that are `queued`, or `taken` with an expired lease
//!   (their owner crashed), sets `owner` and `lease_expires`, and adds one
//!   to `attempts`. So `attempts` counts the takes: a job that was returned
//!   keeps the attempt it was returned from.
//! * **finish**: `done`, and `done_count + 1`. `done_count` is never reset,
//!   so a job finished twice (two owners that both believed they held it) is
//!   visible as `done_count > 1`.
//! * **release**: back to `queued`, `owner` and lease cleared, `attempts`
//!   unchanged. Only jobs still `taken` by the caller are touched.
//!
//! # Blocking calls
//!
//! SQLite calls block. They are made synchronously, on the async task that
//! needs them, through one `std::sync::Mutex<rusqlite::Connection>`, rather
//! than on tokio's blocking pool (`spawn_blocking!` in a `#[scoped]` fn):
//! every call is one short statement on a local file (well under a
//! millisecond), the lock is never held across an `.await`, and it keeps
//! the job's cleanup simple: a job cancelled after the grace period returns
//! itself to the queue from a `Drop` guard, where nothing can be awaited.
//! The price is that a call waiting on another process's write lock
//! (`busy_timeout`, 5 s) holds a runtime thread for that long; with one
//! writer per database (the instance lock) that wait is short.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

/// A database error, as text (what `rusqlite` said, and what we were doing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

/// Adds what we were doing to a `rusqlite` error.
pub(crate) fn context<T>(doing: &str, result: rusqlite::Result<T>) -> Result<T, DbError> {
    result.map_err(|error| DbError(format!("{doing}: {error}")))
}

/// Milliseconds since the Unix epoch: leases and the lock expire in this
/// clock, shared by every process on the machine.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// `now + duration`, in [`now_ms`]'s clock.
pub fn ms_from_now(duration: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// A job this process has taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its row id.
    pub id: i64,
    /// What to do (the simulated work ignores it).
    pub payload: String,
    /// How many times it has been taken, this time included.
    pub attempts: i64,
}

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `queued`.
    pub queued: u64,
    /// `taken`, by anyone.
    pub taken: u64,
    /// `done`.
    pub done: u64,
    /// `failed`.
    pub failed: u64,
}

/// The queue: a connection to the database file, shared by the tasks of
/// this process.
#[derive(Debug)]
pub struct Queue {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'taken', 'done', 'failed')),
        owner TEXT,
        lease_expires INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        done_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);
    CREATE TABLE IF NOT EXISTS instance_lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
";

impl Queue {
    /// Opens the database at `path`, creating the file and the tables on
    /// first use, in WAL mode. A file that is not a database, or a path that
    /// cannot be written, is an error; the schema is created in one
    /// transaction, so a failure leaves nothing half-made.
    pub fn open(path: &Path) -> Result<Queue, DbError> {
        let doing = |what: &str| format!("{what} {}", path.display());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = context(
            &doing("cannot open"),
            Connection::open_with_flags(path, flags),
        )?;
        context(
            &doing("cannot use"),
            conn.busy_timeout(Duration::from_secs(5)),
        )?;
        let mode: String = context(
            &doing("cannot use"),
            conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)),
        )?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError(format!(
                "{}: journal mode is {mode}, not wal",
                doing("cannot use")
            )));
        }
        let tx = context(
            &doing("cannot write to"),
            conn.transaction_with_behavior(TransactionBehavior::Immediate),
        )?;
        context(
            &doing("cannot create the tables in"),
            tx.execute_batch(SCHEMA),
        )?;
        context(&doing("cannot create the tables in"), tx.commit())?;
        Ok(Queue {
            conn: Mutex::new(conn),
        })
    }

    /// The connection. A panic while it was held cannot leave SQLite in a
    /// bad state (an open transaction is rolled back on drop), so a poisoned
    /// lock is taken anyway.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `count` queued jobs, in one transaction; returns the new total.
    pub fn enqueue(&self, count: u64) -> Result<u64, DbError> {
        let mut conn = self.conn();
        let tx = context(
            "cannot enqueue",
            conn.transaction_with_behavior(TransactionBehavior::Immediate),
        )?;
        {
            let mut insert = context(
                "cannot enqueue",
                tx.prepare("INSERT INTO jobs (payload, state) VALUES (?1, 'queued')"),
            )?;
            for n in 0..count {
                context(
                    "cannot enqueue",
                    insert.execute(params![format!("job {n}")]),
                )?;
            }
        }
        let total: i64 = context(
            "cannot enqueue",
            tx.query_row("SELECT count(*) FROM jobs", [], |row| row.get(0)),
        )?;
        context("cannot enqueue", tx.commit())?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Claims up to `limit` jobs for `owner`, leased for `lease`: `queued`
    /// ones, and `taken` ones whose lease has expired.
    pub fn take(&self, owner: &str, limit: usize, lease: Duration) -> Result<Vec<Job>, DbError> {
        let mut conn = self.conn();
        let tx = context(
            "cannot take jobs",
            conn.transaction_with_behavior(TransactionBehavior::Immediate),
        )?;
        let jobs = {
            let mut claim = context(
                "cannot take jobs",
                tx.prepare(
                    "UPDATE jobs
                     SET state = 'taken', owner = ?1, lease_expires = ?2, attempts = attempts + 1
                     WHERE id IN (
                         SELECT id FROM jobs
                         WHERE state = 'queued' OR (state = 'taken' AND lease_expires < ?3)
                         ORDER BY id
                         LIMIT ?4
                     )
                     RETURNING id, payload, attempts",
                ),
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = context(
                "cannot take jobs",
                claim.query_map(params![owner, ms_from_now(lease), now_ms(), limit], |row| {
                    Ok(Job {
                        id: row.get(0)?,
                        payload: row.get(1)?,
                        attempts: row.get(2)?,
                    })
                }),
            )?;
            context(
                "cannot take jobs",
                rows.collect::<rusqlite::Result<Vec<_>>>(),
            )?
        };
        context("cannot take jobs", tx.commit())?;
        let mut jobs = jobs;
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Marks job `id` done (and counts it in `done_count`).
    pub fn finish(&self, id: i64) -> Result<(), DbError> {
        context(
            "cannot finish a job",
            self.conn().execute(
                "UPDATE jobs SET state = 'done', done_count = done_count + 1,
                     owner = NULL, lease_expires = NULL
                 WHERE id = ?1",
                params![id],
            ),
        )?;
        Ok(())
    }

    /// Returns job `id` to the queue if `owner` still holds it; says whether
    /// it did.
    pub fn release(&self, id: i64, owner: &str) -> Result<bool, DbError> {
        let changed = context(
            "cannot return a job",
            self.conn().execute(
                "UPDATE jobs SET state = 'queued', owner = NULL, lease_expires = NULL
                 WHERE id = ?1 AND owner = ?2 AND state = 'taken'",
                params![id, owner],
            ),
        )?;
        Ok(changed > 0)
    }

    /// Returns every job `owner` still holds; says how many.
    pub fn release_all(&self, owner: &str) -> Result<u64, DbError> {
        let changed = context(
            "cannot return jobs",
            self.conn().execute(
                "UPDATE jobs SET state = 'queued', owner = NULL, lease_expires = NULL
                 WHERE owner = ?1 AND state = 'taken'",
                params![owner],
            ),
        )?;
        Ok(changed as u64)
    }

    /// Extends the lease of every job `owner` holds to `lease` from now;
    /// says how many.
    pub fn extend_leases(&self, owner: &str, lease: Duration) -> Result<u64, DbError> {
        let changed = context(
            "cannot extend leases",
            self.conn().execute(
                "UPDATE jobs SET lease_expires = ?2 WHERE owner = ?1 AND state = 'taken'",
                params![owner, ms_from_now(lease)],
            ),
        )?;
        Ok(changed as u64)
    }

    /// How many jobs `owner` holds.
    pub fn taken_by(&self, owner: &str) -> Result<u64, DbError> {
        let taken: i64 = context(
            "cannot count jobs",
            self.conn().query_row(
                "SELECT count(*) FROM jobs WHERE owner = ?1 AND state = 'taken'",
                params![owner],
                |row| row.get(0),
            ),
        )?;
        Ok(u64::try_from(taken).unwrap_or(0))
    }

    /// How many jobs are in each state.
    pub fn counts(&self) -> Result<Counts, DbError> {
        let conn = self.conn();
        let mut query = context(
            "cannot count jobs",
            conn.prepare("SELECT state, count(*) FROM jobs GROUP BY state"),
        )?;
        let rows = context(
            "cannot count jobs",
            query.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            }),
        )?;
        let mut counts = Counts::default();
        for row in rows {
            let (state, n) = context("cannot count jobs", row)?;
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "queued" => counts.queued = n,
                "taken" => counts.taken = n,
                "done" => counts.done = n,
                _ => counts.failed += n,
            }
        }
        Ok(counts)
    }
}
