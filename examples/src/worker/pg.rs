//! The job queue on PostgreSQL, for many workers at once.
//!
//! ```text
//! tethered_worker.jobs(id, payload, state, owner, claim, attempts,
//!     max_attempts, lease_until, run_after, unique_key, last_error,
//!     cancel_reason, done_count, created_at, finished_at)
//! ```
//!
//! * **claim** ([`PgQueue::take`]): `FOR UPDATE SKIP LOCKED` in one short
//!   statement: up to `limit` ready jobs become `running`, owned by the
//!   caller until `lease_until`, and `claim` goes up by one. `claim` is the
//!   fencing token: it is never reused, so every later write (finish,
//!   release, fail, renew), which matches owner *and* claim, is a no-op for
//!   a worker that lost the job, however late it comes.
//! * **renew** ([`PgQueue::renew`]): pushes `lease_until` on; finding the
//!   lease gone says who holds the job now.
//! * **rescue** ([`PgQueue::rescue_expired`]): only on an expired lease,
//!   never on how long a job has run, re-checking state and lease in the
//!   statement that acts, and only by the leader: the one worker whose
//!   term ([`PgQueue::lead`], issued by the database) is current, checked
//!   in that same statement. A rescue uses up an attempt (the job may be
//!   what killed its worker).
//! * **interrupted, failed, cancelled** stay apart: a job a shutdown
//!   interrupts goes back at once with its attempts as they were
//!   ([`PgQueue::release`]); a failed one is retried after a capped,
//!   jittered exponential backoff until `max_attempts`, then `failed` with
//!   its last error ([`PgQueue::fail`]).
//!
//! The schema is versioned and migrated in one transaction, under a
//! transaction-level advisory lock (workers starting together migrate once;
//! a session lock would die with its connection).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Transaction};

use super::queue::{Counts, DbError};
use super::store::{Claimed, LostLease, Renewal};

/// The schema version this worker knows.
pub const SCHEMA_VERSION: i32 = 3;

/// The migrations, by the version each brings the schema to.
const MIGRATIONS: [(i32, &str); 3] = [
    (
        1,
        "
    CREATE TABLE tethered_worker.jobs (
        id bigserial PRIMARY KEY,
        payload text NOT NULL,
        state text NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        owner text,
        claim bigint NOT NULL DEFAULT 0,
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
        lease_until timestamptz,
        run_after timestamptz NOT NULL DEFAULT now(),
        unique_key text,
        last_error text,
        cancel_reason text,
        done_count integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
    );
    CREATE INDEX jobs_ready ON tethered_worker.jobs (run_after, id) WHERE state = 'queued';
    CREATE INDEX jobs_leases ON tethered_worker.jobs (lease_until) WHERE state = 'running';
    CREATE UNIQUE INDEX jobs_unique ON tethered_worker.jobs (unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');
    ",
    ),
    (
        2,
        "
    CREATE TABLE tethered_worker.leader (
        id integer PRIMARY KEY CHECK (id = 1),
        holder text NOT NULL,
        term bigint NOT NULL,
        expires_at timestamptz NOT NULL
    );
    ",
    ),
    (
        3,
        "
    CREATE TABLE tethered_worker.schedule (
        name text NOT NULL,
        period bigint NOT NULL,
        enqueued_by text NOT NULL,
        term bigint NOT NULL,
        PRIMARY KEY (name, period)
    );
    ",
    ),
];

/// The advisory lock migrations take (in their transaction only).
const MIGRATION_LOCK: i64 = 0x7465_7468_6572_6564;

/// What [`PgQueue::fail`] did with a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Queued again, to run after `after`.
    Retry {
        /// The backoff.
        after: Duration,
    },
    /// Out of attempts: `failed`, with its last error kept.
    GaveUp,
    /// Not the caller's any more: nothing written.
    Fenced,
}

/// The backoff before a failed job's next attempt: `base · 2^(attempts-1)`,
/// capped at `max`, then scaled by a random factor in [0.5, 1] (jitter,
/// so that jobs that failed together do not retry together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `attempts` used-up attempts (at least 1), with
    /// `unit` (in [0, 1)) as the random draw.
    pub fn delay(&self, attempts: i32, unit: f64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let full = self.base.saturating_mul(1 << doublings).min(self.max);
        full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// The queue in a PostgreSQL database: a small pool of connections.
#[derive(Clone)]
pub struct PgQueue {
    pool: Pool,
    /// For connections of its own (LISTEN), outside the pool.
    config: std::sync::Arc<tokio_postgres::Config>,
}

/// The channel a job's enqueue notifies (in the enqueuing transaction).
pub const JOBS_CHANNEL: &str = "tethered_worker_jobs";

/// The channel `worker cancel` notifies: `<job id> <who asked> <reason>`.
pub const CANCEL_CHANNEL: &str = "tethered_worker_cancel";

/// What a worker's listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Jobs were enqueued: look for work now rather than at the next poll.
    Jobs,
    /// Job `id` is to be cancelled, for `reason`, as `by` asked.
    Cancel {
        /// The job.
        id: i64,
        /// Who asked, from where: `user@host`.
        by: String,
        /// Why.
        reason: String,
    },
}

/// What [`PgQueue::request_cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRequest {
    /// The job was queued: it is `cancelled` now, and never runs.
    CancelledQueued,
    /// The job is running: its owner was told (it ends `cancelled`).
    Asked {
        /// The worker running it.
        owner: String,
    },
    /// The job had ended already: in this state.
    AlreadyEnded(String),
    /// There is no such job.
    NoSuchJob,
}

impl fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgQueue").finish_non_exhaustive()
    }
}

fn db(doing: &str) -> impl FnOnce(tokio_postgres::Error) -> DbError + '_ {
    move |error| {
        // The server's own message, which says what is wrong, when there is
        // one; tokio-postgres's summary otherwise.
        let said = match (error.as_db_error(), std::error::Error::source(&error)) {
            (Some(server), _) => server.message().to_owned(),
            (None, Some(source)) => format!("{error}: {source}"),
            (None, None) => error.to_string(),
        };
        match fix_for(&error) {
            Some(fix) => DbError(format!("{doing}: {said}; {fix}")),
            None => DbError(format!("{doing}: {said}")),
        }
    }
}

/// How to fix the errors a user meets first: the role's rights, the
/// password, a database that is not there, a server that does not answer.
fn fix_for(error: &tokio_postgres::Error) -> Option<&'static str> {
    use tokio_postgres::error::SqlState;
    let Some(code) = error.code() else {
        // No SQLSTATE: the server was never reached (tokio-postgres says
        // only that in its text), or the connection broke.
        return error
            .to_string()
            .starts_with("error connecting to server")
            .then_some("is PostgreSQL running there, and does the URL name its host and port?");
    };
    Some(match code {
        code if *code == SqlState::INSUFFICIENT_PRIVILEGE => {
            "the URL's role needs CREATE on the database (to make schema \
             `tethered_worker`, once) and USAGE on that schema with SELECT, INSERT, UPDATE and \
             DELETE on its tables and sequences: ask the database's owner to grant them, or \
             connect as the owner"
        }
        code if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            "check the user and password in the URL (or PGPASSWORD)"
        }
        code if *code == SqlState::INVALID_CATALOG_NAME => {
            "create it first (`createdb NAME`), or name another database in the URL"
        }
        _ => return None,
    })
}

fn pool(doing: &str) -> impl FnOnce(deadpool_postgres::PoolError) -> DbError + '_ {
    move |error| match error {
        deadpool_postgres::PoolError::Backend(error) => db(doing)(error),
        other => DbError(format!("{doing}: {other}")),
    }
}

impl PgQueue {
    /// Connects to the database at `url` (a `postgres://` URL) with a pool
    /// of up to `connections`, and brings its schema up to date.
    pub async fn connect(url: &str, connections: usize) -> Result<PgQueue, DbError> {
        let config: tokio_postgres::Config = url.parse().map_err(|error| {
            DbError(format!(
                "`{url}` is not a PostgreSQL URL like postgres://user@host/db: {error}"
            ))
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .build()
            .map_err(|error| DbError(format!("cannot make a connection pool: {error}")))?;
        let queue = PgQueue {
            pool,
            config: std::sync::Arc::new(config),
        };
        queue.migrate().await?;
        Ok(queue)
    }

    /// Brings the schema to [`SCHEMA_VERSION`], in one transaction.
    async fn migrate(&self) -> Result<(), DbError> {
        let doing = "cannot set up the queue's tables";
        let mut client = self.pool.get().await.map_err(pool(doing))?;
        let tx = client.transaction().await.map_err(db(doing))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db(doing))?;
        // Made only when missing: creating a schema takes CREATE on the
        // database, even with IF NOT EXISTS, and a worker's role usually has
        // only the rights on the tables.
        let made: bool = tx
            .query_one(
                "SELECT to_regclass('tethered_worker.schema_version') IS NOT NULL",
                &[],
            )
            .await
            .map_err(db(doing))?
            .get(0);
        if !made {
            tx.batch_execute(
                "CREATE SCHEMA IF NOT EXISTS tethered_worker;
                 CREATE TABLE tethered_worker.schema_version (version integer NOT NULL);",
            )
            .await
            .map_err(db(doing))?;
        }
        let version: i32 = tx
            .query_opt("SELECT version FROM tethered_worker.schema_version", &[])
            .await
            .map_err(db(doing))?
            .map_or(0, |row| row.get(0));
        if version > SCHEMA_VERSION {
            return Err(DbError(format!(
                "{doing}: they were made by a newer worker (schema version {version}; this one \
                 knows {SCHEMA_VERSION}); run that version"
            )));
        }
        if version == 0 {
            let foreign = tx
                .query_opt(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = 'tethered_worker' \
                     AND table_name <> 'schema_version'",
                    &[],
                )
                .await
                .map_err(db(doing))?;
            if foreign.is_some() {
                return Err(DbError(format!(
                    "{doing}: schema `tethered_worker` holds tables that are not the worker's; \
                     use another database"
                )));
            }
        }
        for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
            tx.batch_execute(sql).await.map_err(db(doing))?;
            tx.execute("DELETE FROM tethered_worker.schema_version", &[])
                .await
                .map_err(db(doing))?;
            tx.execute(
                "INSERT INTO tethered_worker.schema_version (version) VALUES ($1)",
                &[to],
            )
            .await
            .map_err(db(doing))?;
        }
        tx.commit().await.map_err(db(doing))
    }

    /// Adds `count` queued jobs, in one transaction; returns the new total.
    pub async fn enqueue(&self, count: u64) -> Result<u64, DbError> {
        let doing = "cannot enqueue";
        let mut client = self.pool.get().await.map_err(pool(doing))?;
        let tx = client.transaction().await.map_err(db(doing))?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO tethered_worker.jobs (payload)
             SELECT 'job ' || n FROM generate_series(0::bigint, $1::bigint - 1) AS n",
            &[&count],
        )
        .await
        .map_err(db(doing))?;
        let total: i64 = tx
            .query_one("SELECT count(*) FROM tethered_worker.jobs", &[])
            .await
            .map_err(db(doing))?
            .get(0);
        notify_jobs(&tx).await?;
        tx.commit().await.map_err(db(doing))?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Enqueues one job in the caller's transaction: it exists if and when
    /// that transaction commits. With a `unique_key`, a job with the same
    /// key still queued or running makes this a no-op (`None`).
    pub async fn enqueue_in(
        tx: &Transaction<'_>,
        payload: &str,
        unique_key: Option<&str>,
    ) -> Result<Option<i64>, DbError> {
        let row = tx
            .query_opt(
                "INSERT INTO tethered_worker.jobs (payload, unique_key) VALUES ($1, $2)
                 ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
                     AND state IN ('queued', 'running')
                 DO NOTHING
                 RETURNING id",
                &[&payload, &unique_key],
            )
            .await
            .map_err(db("cannot enqueue"))?;
        if row.is_some() {
            notify_jobs(tx).await?;
        }
        Ok(row.map(|row| row.get(0)))
    }

    /// Claims up to `limit` ready jobs for `owner`, leased for `lease`.
    pub async fn take(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, DbError> {
        let doing = "cannot take jobs";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "WITH ready AS (
                     SELECT id FROM tethered_worker.jobs
                     WHERE state = 'queued' AND run_after <= now()
                     ORDER BY run_after, id
                     LIMIT $2::bigint
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE tethered_worker.jobs AS job
                 SET state = 'running', owner = $1, claim = job.claim + 1,
                     lease_until = now() + $3::float8 * interval '1 millisecond'
                 FROM ready WHERE job.id = ready.id
                 RETURNING job.id, job.payload, job.claim, job.attempts",
                &[&owner, &limit, &millis(lease)],
            )
            .await
            .map_err(db(doing))?;
        let mut jobs: Vec<Claimed> = rows
            .iter()
            .map(|row| Claimed {
                id: row.get(0),
                payload: row.get(1),
                claim: row.get(2),
                attempts: row.get(3),
            })
            .collect();
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Extends `job`'s lease to `lease` from now, if it is still `owner`'s
    /// under this claim.
    pub async fn renew(
        &self,
        job: &Claimed,
        owner: &str,
        lease: Duration,
    ) -> Result<Renewal, DbError> {
        let doing = "cannot renew a lease";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let renewed = client
            .execute(
                "UPDATE tethered_worker.jobs
                 SET lease_until = now() + $4::float8 * interval '1 millisecond'
                 WHERE id = $1 AND owner = $2 AND claim = $3 AND state = 'running'",
                &[&job.id, &owner, &job.claim, &millis(lease)],
            )
            .await
            .map_err(db(doing))?;
        if renewed == 1 {
            return Ok(Renewal::Renewed);
        }
        let now = client
            .query_opt(
                "SELECT state, owner, claim FROM tethered_worker.jobs WHERE id = $1",
                &[&job.id],
            )
            .await
            .map_err(db(doing))?;
        Ok(Renewal::Lost(LostLease {
            id: job.id,
            state: now.as_ref().map(|row| row.get(0)),
            owner: now.as_ref().and_then(|row| row.get(1)),
            claim: now.map(|row| row.get(2)),
        }))
    }

    /// Marks `job` done, if it is still `owner`'s under this claim;
    /// `false` (and nothing written) otherwise.
    pub async fn finish(&self, job: &Claimed, owner: &str) -> Result<bool, DbError> {
        self.fenced(
            "cannot finish a job",
            "UPDATE tethered_worker.jobs
             SET state = 'done', done_count = done_count + 1, owner = NULL, lease_until = NULL,
                 finished_at = now()
             WHERE id = $1 AND owner = $2 AND claim = $3 AND state = 'running'",
            job,
            owner,
        )
        .await
    }

    /// Puts an interrupted `job` back in the queue at once, its attempts as
    /// they were, if it is still `owner`'s under this claim.
    pub async fn release(&self, job: &Claimed, owner: &str) -> Result<bool, DbError> {
        self.fenced(
            "cannot return a job",
            "UPDATE tethered_worker.jobs
             SET state = 'queued', owner = NULL, lease_until = NULL, run_after = now()
             WHERE id = $1 AND owner = $2 AND claim = $3 AND state = 'running'",
            job,
            owner,
        )
        .await
    }

    /// Records that `job` failed with `error`: queued again after
    /// `backoff`'s delay (drawn with `unit`, in [0, 1)), or `failed` once
    /// it has used up its attempts.
    pub async fn fail(
        &self,
        job: &Claimed,
        owner: &str,
        error: &str,
        backoff: Backoff,
        unit: f64,
    ) -> Result<Failed, DbError> {
        let doing = "cannot record a failure";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let after = backoff.delay(job.attempts + 1, unit);
        let row = client
            .query_opt(
                "UPDATE tethered_worker.jobs
                 SET attempts = attempts + 1, last_error = $4, owner = NULL, lease_until = NULL,
                     state = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
                     run_after = now() + $5::float8 * interval '1 millisecond',
                     finished_at = CASE WHEN attempts + 1 >= max_attempts THEN now() END
                 WHERE id = $1 AND owner = $2 AND claim = $3 AND state = 'running'
                 RETURNING state",
                &[&job.id, &owner, &job.claim, &error, &millis(after)],
            )
            .await
            .map_err(db(doing))?;
        Ok(match row.map(|row| row.get::<_, String>(0)).as_deref() {
            None => Failed::Fenced,
            Some("failed") => Failed::GaveUp,
            Some(_) => Failed::Retry { after },
        })
    }

    /// Becomes, or stays, the leader for `ttl`, as `me`: returns the term
    /// it holds, or `None` while another worker's term is current. A term
    /// is issued by the database and only grows: a renewal keeps it, a new
    /// holder (the last one's term expired) gets the next one.
    pub async fn lead(&self, me: &str, ttl: Duration) -> Result<Option<i64>, DbError> {
        let doing = "cannot take the lead";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let row = client
            .query_opt(
                "INSERT INTO tethered_worker.leader AS leader (id, holder, term, expires_at)
                 VALUES (1, $1, 1, now() + $2::float8 * interval '1 millisecond')
                 ON CONFLICT (id) DO UPDATE
                 SET holder = excluded.holder,
                     term = CASE WHEN leader.holder = excluded.holder AND leader.expires_at > now()
                                 THEN leader.term ELSE leader.term + 1 END,
                     expires_at = excluded.expires_at
                 WHERE leader.holder = excluded.holder OR leader.expires_at <= now()
                 RETURNING term",
                &[&me, &millis(ttl)],
            )
            .await
            .map_err(db(doing))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Enqueues the job of schedule `name` for the current period of
    /// `every` (periods counted in the database's clock), once: only while
    /// `me` holds leader term `term`, checked in the statement that
    /// enqueues, and only if no one enqueued that period yet (a leader
    /// that lost its term and acts on it anyway, or two that overlap,
    /// enqueue nothing). Returns the job's id when it enqueued one.
    pub async fn enqueue_scheduled(
        &self,
        me: &str,
        term: i64,
        name: &str,
        every: Duration,
    ) -> Result<Option<i64>, DbError> {
        let doing = "cannot enqueue a scheduled job";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let row = client
            .query_opt(
                "WITH slot AS (
                     INSERT INTO tethered_worker.schedule (name, period, enqueued_by, term)
                     SELECT $3, floor(extract(epoch FROM now()) * 1000 / $4::float8)::bigint, $1, $2
                     WHERE EXISTS (
                         SELECT 1 FROM tethered_worker.leader
                         WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > now()
                     )
                     ON CONFLICT (name, period) DO NOTHING
                     RETURNING period
                 ),
                 job AS (
                     INSERT INTO tethered_worker.jobs (payload)
                     SELECT $3 || ' ' || period FROM slot
                     RETURNING id
                 )
                 SELECT id, pg_notify($5, '') FROM job",
                &[&me, &term, &name, &millis(every), &JOBS_CHANNEL],
            )
            .await
            .map_err(db(doing))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Takes back the jobs whose lease has expired (their worker died, or
    /// lost the database): queued again, or `failed` when that was their
    /// last attempt; only while `me` holds leader term `term`, checked in
    /// the statement that acts. Returns their ids.
    pub async fn rescue_expired(&self, me: &str, term: i64) -> Result<Vec<i64>, DbError> {
        let doing = "cannot rescue jobs";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let rows = client
            .query(
                "UPDATE tethered_worker.jobs
                 SET attempts = attempts + 1, owner = NULL, lease_until = NULL,
                     last_error = 'lease expired (held by ' || owner || ')',
                     state = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
                     finished_at = CASE WHEN attempts + 1 >= max_attempts THEN now() END
                 WHERE state = 'running' AND lease_until < now()
                   AND EXISTS (
                       SELECT 1 FROM tethered_worker.leader
                       WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > now()
                   )
                 RETURNING id",
                &[&me, &term],
            )
            .await
            .map_err(db(doing))?;
        let mut ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Returns every job `owner` still holds, as interrupted; says how
    /// many.
    pub async fn release_all(&self, owner: &str) -> Result<HashSet<(i64, i64)>, DbError> {
        let doing = "cannot return jobs";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let returned = client
            .query(
                "UPDATE tethered_worker.jobs
                 SET state = 'queued', owner = NULL, lease_until = NULL, run_after = now()
                 WHERE owner = $1 AND state = 'running'
                 RETURNING id, claim",
                &[&owner],
            )
            .await
            .map_err(db(doing))?;
        Ok(returned
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// How many jobs `owner` holds.
    pub async fn held_by(&self, owner: &str) -> Result<u64, DbError> {
        let doing = "cannot count jobs";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM tethered_worker.jobs WHERE owner = $1 AND state = 'running'",
                &[&owner],
            )
            .await
            .map_err(db(doing))?
            .get(0);
        Ok(u64::try_from(held).unwrap_or(0))
    }

    /// How many jobs are in each state (`running` counts as taken).
    pub async fn counts(&self) -> Result<Counts, DbError> {
        let doing = "cannot count jobs";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let rows = client
            .query(
                "SELECT state, count(*) FROM tethered_worker.jobs GROUP BY state",
                &[],
            )
            .await
            .map_err(db(doing))?;
        let mut counts = Counts::default();
        for row in rows {
            let n = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            match row.get::<_, &str>(0) {
                "queued" => counts.queued = n,
                "running" => counts.taken = n,
                "done" => counts.done = n,
                "failed" => counts.failed = n,
                "cancelled" => counts.cancelled = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Listens for enqueued jobs and cancel requests on a connection of its
    /// own (a pooled one may be recycled), calling `heard` for each, until
    /// the connection fails or closes: the caller reconnects, and polls
    /// meanwhile (a pooler in transaction mode drops LISTEN altogether).
    pub async fn listen(&self, heard: &mut (dyn FnMut(Heard) + Send)) -> Result<(), DbError> {
        let doing = "cannot listen for new jobs";
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(db(doing))?;
        let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
        // The connection is driven here, with the statements, in one task:
        // its messages are read as they come, notifications among them.
        let drive = async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(heard))) => {
                        let _ = tx.send(heard);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                }
            }
        };
        let mut drive = std::pin::pin!(drive);
        let statement = format!("LISTEN {JOBS_CHANNEL}; LISTEN {CANCEL_CHANNEL}");
        let subscribe = client.batch_execute(&statement);
        tokio::select! {
            ended = &mut drive => return ended.map_err(db(doing)),
            subscribed = subscribe => subscribed.map_err(db(doing))?,
        }
        loop {
            tokio::select! {
                ended = &mut drive => return ended.map_err(db("lost the connection listening for jobs")),
                Some(notification) = notifications.recv() => {
                    if notification.channel() == JOBS_CHANNEL {
                        heard(Heard::Jobs);
                    } else if let Some((id, rest)) = notification.payload().split_once(' ')
                        && let Some((by, reason)) = rest.split_once(' ')
                        && let Ok(id) = id.parse()
                    {
                        heard(Heard::Cancel { id, by: by.to_owned(), reason: reason.to_owned() });
                    }
                }
            }
        }
    }

    /// Asks for job `id` to be cancelled, for `reason`, as `by` (`user@host`,
    /// no spaces) asks: a queued job is cancelled at once; a running one's
    /// owner is told, through [`CANCEL_CHANNEL`], and ends it.
    pub async fn request_cancel(
        &self,
        id: i64,
        by: &str,
        reason: &str,
    ) -> Result<CancelRequest, DbError> {
        let doing = "cannot cancel the job";
        let mut client = self.pool.get().await.map_err(pool(doing))?;
        let tx = client.transaction().await.map_err(db(doing))?;
        let row = tx
            .query_opt(
                "SELECT state, owner FROM tethered_worker.jobs WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db(doing))?;
        let Some(row) = row else {
            return Ok(CancelRequest::NoSuchJob);
        };
        let (state, owner): (String, Option<String>) = (row.get(0), row.get(1));
        let request = match (state.as_str(), owner) {
            ("queued", _) => {
                tx.execute(
                    "UPDATE tethered_worker.jobs SET state = 'cancelled', cancel_reason = $2,
                         finished_at = now()
                     WHERE id = $1",
                    &[&id, &format!("{reason} (asked by {by})")],
                )
                .await
                .map_err(db(doing))?;
                CancelRequest::CancelledQueued
            }
            ("running", Some(owner)) => {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&CANCEL_CHANNEL, &format!("{id} {by} {reason}")],
                )
                .await
                .map_err(db(doing))?;
                CancelRequest::Asked { owner }
            }
            _ => CancelRequest::AlreadyEnded(state),
        };
        tx.commit().await.map_err(db(doing))?;
        Ok(request)
    }

    /// Ends `job` as `cancelled`, with `reason` kept, if `owner` still holds
    /// it under this claim.
    pub async fn cancelled(
        &self,
        job: &Claimed,
        owner: &str,
        reason: &str,
    ) -> Result<bool, DbError> {
        let doing = "cannot record a cancellation";
        let client = self.pool.get().await.map_err(pool(doing))?;
        let written = client
            .execute(
                "UPDATE tethered_worker.jobs
                 SET state = 'cancelled', cancel_reason = $4, owner = NULL, lease_until = NULL,
                     finished_at = now()
                 WHERE id = $1 AND owner = $2 AND claim = $3 AND state = 'running'",
                &[&job.id, &owner, &job.claim, &reason],
            )
            .await
            .map_err(db(doing))?;
        Ok(written == 1)
    }

    /// A connection from the pool, for what the methods above do not do (a
    /// transaction to enqueue in, say).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        self.pool.get().await.map_err(pool("cannot connect"))
    }

    async fn fenced(
        &self,
        doing: &str,
        sql: &str,
        job: &Claimed,
        owner: &str,
    ) -> Result<bool, DbError> {
        let client = self.pool.get().await.map_err(pool(doing))?;
        let written = client
            .execute(sql, &[&job.id, &owner, &job.claim])
            .await
            .map_err(db(doing))?;
        Ok(written == 1)
    }
}

/// `duration` in milliseconds (fractions kept), for `interval` arithmetic.
fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Tells the listening workers that jobs were enqueued: delivered when
/// `tx` commits, and not at all if it rolls back.
async fn notify_jobs(tx: &Transaction<'_>) -> Result<(), DbError> {
    tx.execute("SELECT pg_notify($1, '')", &[&JOBS_CHANNEL])
        .await
        .map_err(db("cannot enqueue"))?;
    Ok(())
}
