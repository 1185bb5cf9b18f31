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
//! # Whose file
//!
//! The worker marks its files (SQLite's `application_id`, [`APPLICATION_ID`],
//! and the schema's version in `user_version`) in the transaction that
//! creates its tables, and looks before it writes: another program's
//! database is refused unless asked ([`Queue::open_adding_tables`]), and
//! left as it was.
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

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::store::{Claimed, LostLease, Renewal};

/// A database error, as text (what `rusqlite` said, and what we were doing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

/// Adds what we were doing to a `rusqlite` error, on one line (SQLite's
/// messages can quote a whole statement, newlines and all).
pub(crate) fn context<T>(doing: &str, result: rusqlite::Result<T>) -> Result<T, DbError> {
    result.map_err(|error| {
        let said = error.to_string();
        let said: Vec<&str> = said.split_whitespace().collect();
        DbError(format!("{doing}: {}", said.join(" ")))
    })
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
    /// `cancelled` (on request: `worker cancel`).
    pub cancelled: u64,
}

/// The queue: a connection to the database file, shared by the tasks of
/// this process.
#[derive(Debug)]
pub struct Queue {
    conn: Mutex<Connection>,
}

/// Marks a database file as the worker's (SQLite's `application_id`, in the
/// file's header): "TWRK".
pub const APPLICATION_ID: i32 = 0x5457_524B;

/// The version of the tables (SQLite's `user_version`). A file of a newer
/// version is refused; older ones would be migrated, in one transaction.
pub const SCHEMA_VERSION: i32 = 1;

/// The columns of `jobs`, as the first worker, which marked its files with
/// no id, made them: such a file is adopted rather than refused.
const JOBS_COLUMNS: [&str; 7] = [
    "id",
    "payload",
    "state",
    "owner",
    "lease_expires",
    "attempts",
    "done_count",
];

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

/// What a database file is, before the worker writes anything to it.
enum Found {
    /// No tables: a new file, or one made empty.
    Empty,
    /// The worker's, at this schema version.
    Ours(i32),
    /// The worker's, from before files were marked.
    Unmarked,
    /// Another program's tables, with no mark: their names.
    Foreign(Vec<String>),
    /// Marked by another program.
    OtherApplication(i32),
}

impl Queue {
    /// Opens the queue's database at `path`, creating the file and the
    /// tables on first use, in WAL mode. Refused, with nothing written to
    /// the file: a file that is not a database, a path that cannot be
    /// written, a database of another program (use
    /// [`open_adding_tables`](Self::open_adding_tables) to share one on
    /// purpose), or one made by a newer worker. The schema is created in
    /// one transaction, so a failure leaves nothing half-made.
    pub fn open(path: &Path) -> Result<Queue, DbError> {
        Self::open_with(path, false)
    }

    /// [`open`](Self::open), but a database holding another program's
    /// tables gets the worker's added beside them (`--init`), unless it
    /// has tables of the same names.
    pub fn open_adding_tables(path: &Path) -> Result<Queue, DbError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, add_to_foreign: bool) -> Result<Queue, DbError> {
        if path.as_os_str().is_empty() {
            return Err(DbError(
                "no database file: the path is empty (the default is ./worker.sqlite3)".to_owned(),
            ));
        }
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
        // Looked at before anything is written: another program's file is
        // left exactly as it was.
        match context(&doing("cannot read"), found(&conn))? {
            Found::Empty | Found::Unmarked => {}
            Found::Ours(version) if version <= SCHEMA_VERSION => {}
            Found::Ours(version) => {
                return Err(DbError(format!(
                    "{}: it was made by a newer worker (schema version {version}; this one \
                     knows {SCHEMA_VERSION}); run that version",
                    doing("cannot use")
                )));
            }
            Found::OtherApplication(id) => {
                return Err(DbError(format!(
                    "{}: it belongs to another program (SQLite application id {id:#x}); \
                     point --db at a new file",
                    doing("refusing to use")
                )));
            }
            Found::Foreign(tables) if !add_to_foreign => {
                return Err(DbError(format!(
                    "{}: it holds another program's tables ({}); point --db at a new file, \
                     or pass --init to add the worker's tables beside them",
                    doing("refusing to use"),
                    named(&tables)
                )));
            }
            Found::Foreign(tables) => {
                if let Some(clash) = tables
                    .iter()
                    .find(|table| ["jobs", "instance_lock"].contains(&table.as_str()))
                {
                    return Err(DbError(format!(
                        "{}: it has a table `{clash}` of its own; point --db at a new file",
                        doing("cannot add the worker's tables to")
                    )));
                }
            }
        }
        let mode: String = context(
            &doing("cannot use"),
            conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)),
        )?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError(format!(
                "{}: SQLite would not put it in WAL mode (it stays in {mode} mode), which \
                 the worker needs for readers beside its writer",
                doing("cannot use")
            )));
        }
        let tx = context(
            &doing("cannot write to"),
            conn.transaction_with_behavior(TransactionBehavior::Immediate),
        )?;
        // Marked in the same transaction: a file with the tables has the
        // mark, and one without has neither.
        let mark = format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        );
        context(
            &doing("cannot create the tables in"),
            tx.execute_batch(&format!("{SCHEMA}{mark}")),
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

    /// Marks `job` done if `owner` still holds it under this claim (its
    /// take count); says whether it did.
    pub fn finish_claim(&self, job: &Claimed, owner: &str) -> Result<bool, DbError> {
        let changed = context(
            "cannot finish a job",
            self.conn().execute(
                "UPDATE jobs SET state = 'done', done_count = done_count + 1,
                     owner = NULL, lease_expires = NULL
                 WHERE id = ?1 AND owner = ?2 AND attempts = ?3 AND state = 'taken'",
                params![job.id, owner, job.claim],
            ),
        )?;
        Ok(changed > 0)
    }

    /// Returns `job` to the queue if `owner` still holds it under this
    /// claim; says whether it did.
    pub fn release_claim(&self, job: &Claimed, owner: &str) -> Result<bool, DbError> {
        let changed = context(
            "cannot return a job",
            self.conn().execute(
                "UPDATE jobs SET state = 'queued', owner = NULL, lease_expires = NULL
                 WHERE id = ?1 AND owner = ?2 AND attempts = ?3 AND state = 'taken'",
                params![job.id, owner, job.claim],
            ),
        )?;
        Ok(changed > 0)
    }

    /// Extends `job`'s lease to `lease` from now if `owner` still holds it
    /// under this claim; otherwise says who holds it now.
    pub fn renew_claim(
        &self,
        job: &Claimed,
        owner: &str,
        lease: Duration,
    ) -> Result<Renewal, DbError> {
        let conn = self.conn();
        let changed = context(
            "cannot renew a lease",
            conn.execute(
                "UPDATE jobs SET lease_expires = ?4
                 WHERE id = ?1 AND owner = ?2 AND attempts = ?3 AND state = 'taken'",
                params![job.id, owner, job.claim, ms_from_now(lease)],
            ),
        )?;
        if changed > 0 {
            return Ok(Renewal::Renewed);
        }
        let now = context(
            "cannot renew a lease",
            conn.query_row(
                "SELECT state, owner, attempts FROM jobs WHERE id = ?1",
                params![job.id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional(),
        )?;
        Ok(Renewal::Lost(LostLease {
            id: job.id,
            state: now.as_ref().map(|(state, ..)| state.clone()),
            owner: now.as_ref().and_then(|(_, owner, _)| owner.clone()),
            claim: now.map(|(.., claim)| claim),
        }))
    }

    /// Returns every job `owner` still holds; says which, by (id, claim).
    pub fn release_all(&self, owner: &str) -> Result<HashSet<(i64, i64)>, DbError> {
        let doing = "cannot return jobs";
        let conn = self.conn();
        let mut statement = context(
            doing,
            conn.prepare(
                "UPDATE jobs SET state = 'queued', owner = NULL, lease_expires = NULL
                 WHERE owner = ?1 AND state = 'taken'
                 RETURNING id, attempts",
            ),
        )?;
        let rows = context(
            doing,
            statement.query_map(params![owner], |row| Ok((row.get(0)?, row.get(1)?))),
        )?;
        context(doing, rows.collect())
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

/// What the file at `conn` is (see [`Found`]).
fn found(conn: &Connection) -> rusqlite::Result<Found> {
    let application: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if application == APPLICATION_ID {
        return Ok(Found::Ours(version));
    }
    if application != 0 {
        return Ok(Found::OtherApplication(application));
    }
    let mut tables = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    let tables: Vec<String> = tables
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tables.is_empty() {
        return Ok(Found::Empty);
    }
    if tables == ["instance_lock", "jobs"] {
        let mut columns = conn.prepare("SELECT name FROM pragma_table_info('jobs')")?;
        let columns: Vec<String> = columns
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if columns == JOBS_COLUMNS {
            return Ok(Found::Unmarked);
        }
    }
    Ok(Found::Foreign(tables))
}

/// Up to three table names, for a message.
fn named(tables: &[String]) -> String {
    let mut named: Vec<String> = tables
        .iter()
        .take(3)
        .map(|table| format!("`{table}`"))
        .collect();
    if tables.len() > 3 {
        named.push(format!("and {} more", tables.len() - 3));
    }
    named.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh path in the temporary directory, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "tethered-queue-{name}-{}-{}",
                std::process::id(),
                now_ms()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn db(&self) -> std::path::PathBuf {
            self.0.join("queue.sqlite3")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_file_of_the_first_worker_is_adopted_and_marked() {
        let scratch = Scratch::new("unmarked");
        {
            let conn = Connection::open(scratch.db()).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO jobs (payload, state) VALUES ('old', 'queued')",
                [],
            )
            .unwrap();
        }
        let queue = Queue::open(&scratch.db()).unwrap();
        assert_eq!(queue.counts().unwrap().queued, 1);
        let id: i32 = queue
            .conn()
            .query_row("PRAGMA application_id", [], |row| row.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
    }

    #[test]
    fn a_file_of_a_newer_worker_or_another_program_is_refused() {
        let scratch = Scratch::new("newer");
        drop(Queue::open(&scratch.db()).unwrap());
        Connection::open(scratch.db())
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1))
            .unwrap();
        let error = Queue::open(&scratch.db()).unwrap_err();
        assert!(
            error.0.contains("made by a newer worker (schema version 2"),
            "{error}"
        );

        let scratch = Scratch::new("other");
        Connection::open(scratch.db())
            .unwrap()
            .execute_batch("PRAGMA application_id = 1234;")
            .unwrap();
        let error = Queue::open(&scratch.db()).unwrap_err();
        assert!(error.0.contains("belongs to another program"), "{error}");
        assert!(
            Queue::open(Path::new(""))
                .unwrap_err()
                .0
                .contains("the path is empty")
        );
    }

    #[test]
    fn errors_are_one_line() {
        let error = context::<()>(
            "cannot do",
            Err(rusqlite::Error::SqlInputError {
                error: rusqlite::ffi::Error::new(1),
                msg: "near \"x\": syntax error".to_owned(),
                sql: "SELECT\n  x\nFROM\n  y".to_owned(),
                offset: 9,
            }),
        )
        .unwrap_err();
        assert!(!error.0.contains('\n'), "{error}");
    }
}
