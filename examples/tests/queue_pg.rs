//! The worker's queue on PostgreSQL, against a real server: a throwaway
//! cluster of this test's own (`initdb` + `pg_ctl`), or `TETHERED_PG_URL`.
//! Without server binaries it says it skipped, unless
//! `TETHERED_PG_REQUIRED=1` (CI) makes that a failure.
//!
//! One cluster serves every scenario, each on a database of its own; they
//! run one after another in one test, so that the cluster is stopped and
//! removed at the end (a static's destructor would never run).
#![cfg(unix)]

use std::time::Duration;

use tethered_examples::worker::pg::{Backoff, Failed, PgQueue};
use tethered_examples::worker::pg_cluster::PgServer;
use tethered_examples::worker::store::{Claimed, Renewal};

#[test]
fn the_postgres_queue_keeps_its_promises() {
    let Some(server) = PgServer::for_tests() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        claims_are_exclusive_and_every_write_is_fenced(&server).await;
        a_lost_lease_fences_the_old_owner_and_says_who_holds_the_job(&server).await;
        interrupted_failed_and_given_up_stay_apart(&server).await;
        enqueue_joins_the_callers_transaction_and_unique_jobs_are_unique(&server).await;
        migrations_run_once_and_refuse_what_is_not_theirs(&server).await;
        leader_terms_come_from_the_database_and_only_the_current_one_acts(&server).await;
        bad_urls_and_refused_connections_are_one_line(&server).await;
        a_role_without_rights_is_told_which_to_ask_for(&server).await;
    });
}

async fn queue(server: &PgServer, name: &str) -> (PgQueue, String) {
    let url = server.create_database(name).await.unwrap();
    (PgQueue::connect(&url, 4).await.unwrap(), url)
}

async fn sql(queue: &PgQueue, statement: &str) {
    queue
        .client()
        .await
        .unwrap()
        .batch_execute(statement)
        .await
        .unwrap();
}

const LEASE: Duration = Duration::from_secs(30);

async fn claims_are_exclusive_and_every_write_is_fenced(server: &PgServer) {
    let (queue, _) = queue(server, "exclusive").await;
    assert_eq!(queue.enqueue(10).await.unwrap(), 10);
    // Two workers claim at once: SKIP LOCKED gives them different jobs.
    let (a, b) = tokio::join!(
        queue.take("worker-a", 4, LEASE),
        queue.take("worker-b", 4, LEASE)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.len(), b.len()), (4, 4));
    assert!(a.iter().all(|job| b.iter().all(|other| other.id != job.id)));
    assert!(a.iter().all(|job| job.claim == 1 && job.attempts == 0));

    // Only the owner, under its claim, writes.
    let job = &a[0];
    assert!(!queue.finish(job, "worker-b").await.unwrap());
    let stale = Claimed {
        claim: job.claim - 1,
        ..job.clone()
    };
    assert!(!queue.finish(&stale, "worker-a").await.unwrap());
    assert!(queue.finish(job, "worker-a").await.unwrap());
    assert!(
        !queue.finish(job, "worker-a").await.unwrap(),
        "finished twice"
    );
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.queued, counts.taken, counts.done), (2, 7, 1));
}

async fn a_lost_lease_fences_the_old_owner_and_says_who_holds_the_job(server: &PgServer) {
    let (queue, _) = queue(server, "lost").await;
    queue.enqueue(1).await.unwrap();
    // A lease that is over as soon as it is given: `worker-a` "dies".
    let old = queue
        .take("worker-a", 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let term = queue.lead("rescuer", LEASE).await.unwrap().unwrap();
    assert_eq!(
        queue.rescue_expired("rescuer", term).await.unwrap(),
        [old.id]
    );
    // Rescued: queued again, one attempt used up.
    let Renewal::Lost(lost) = queue.renew(&old, "worker-a", LEASE).await.unwrap() else {
        panic!("renewed a rescued job");
    };
    assert_eq!(
        lost.to_string(),
        format!("lease lost: job {} is queued now", old.id)
    );

    let new = queue.take("worker-b", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(
        (new.id, new.claim, new.attempts),
        (old.id, old.claim + 1, 1)
    );
    let Renewal::Lost(lost) = queue.renew(&old, "worker-a", LEASE).await.unwrap() else {
        panic!("renewed a job held by another");
    };
    assert_eq!(
        lost.to_string(),
        format!("lease lost: job {} now held by worker-b (claim 2)", old.id)
    );
    // The old owner can change nothing: not finish, not return, not fail.
    assert!(!queue.finish(&old, "worker-a").await.unwrap());
    assert!(!queue.release(&old, "worker-a").await.unwrap());
    let failed = queue
        .fail(&old, "worker-a", "late", Backoff::default(), 0.5)
        .await
        .unwrap();
    assert_eq!(failed, Failed::Fenced);
    // The new one can.
    assert_eq!(
        queue.renew(&new, "worker-b", LEASE).await.unwrap(),
        Renewal::Renewed
    );
    assert!(queue.finish(&new, "worker-b").await.unwrap());
    // A live lease is never rescued, however long the job has run.
    queue.enqueue(1).await.unwrap();
    let live = queue.take("worker-c", 1, LEASE).await.unwrap().remove(0);
    assert!(
        queue
            .rescue_expired("rescuer", term)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(queue.finish(&live, "worker-c").await.unwrap());
}

async fn interrupted_failed_and_given_up_stay_apart(server: &PgServer) {
    let (queue, _) = queue(server, "apart").await;
    queue.enqueue(1).await.unwrap();
    sql(&queue, "UPDATE tethered_worker.jobs SET max_attempts = 2").await;

    // Interrupted by a shutdown: back at once, no attempt used.
    let job = queue.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert!(queue.release(&job, "worker-a").await.unwrap());
    let job = queue.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert_eq!((job.claim, job.attempts), (2, 0));

    // Failed: retried after the backoff, not before.
    let backoff = Backoff {
        base: Duration::from_secs(60),
        max: Duration::from_secs(600),
    };
    let failed = queue
        .fail(&job, "worker-a", "disk full", backoff, 0.0)
        .await
        .unwrap();
    assert_eq!(
        failed,
        Failed::Retry {
            after: Duration::from_secs(30)
        }
    );
    assert!(queue.take("worker-a", 1, LEASE).await.unwrap().is_empty());
    sql(&queue, "UPDATE tethered_worker.jobs SET run_after = now()").await;
    let job = queue.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(job.attempts, 1);

    // Out of attempts: failed, with the last error kept.
    let failed = queue
        .fail(&job, "worker-a", "disk still full", backoff, 0.0)
        .await
        .unwrap();
    assert_eq!(failed, Failed::GaveUp);
    let client = queue.client().await.unwrap();
    let row = client
        .query_one(
            "SELECT state, last_error, attempts FROM tethered_worker.jobs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "failed");
    assert_eq!(row.get::<_, &str>(1), "disk still full");
    assert_eq!(row.get::<_, i32>(2), 2);

    // The backoff doubles, is capped, and jitters between half and all.
    let backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(10),
    };
    assert_eq!(backoff.delay(1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff.delay(3, 1.0), Duration::from_secs(4));
    assert_eq!(backoff.delay(30, 1.0), Duration::from_secs(10));
    assert_eq!(backoff.delay(3, 0.0), Duration::from_secs(2));
}

async fn enqueue_joins_the_callers_transaction_and_unique_jobs_are_unique(server: &PgServer) {
    let (queue, _) = queue(server, "transactional").await;
    let mut client = queue.client().await.unwrap();

    // Rolled back with the caller's own write: no job.
    let tx = client.transaction().await.unwrap();
    assert!(
        PgQueue::enqueue_in(&tx, "send receipt 7", None)
            .await
            .unwrap()
            .is_some()
    );
    tx.rollback().await.unwrap();
    assert_eq!(queue.counts().await.unwrap().queued, 0);

    // Committed: one job; the same unique key again is a no-op while the
    // first is unfinished, in the same transaction or a later one.
    let tx = client.transaction().await.unwrap();
    let first = PgQueue::enqueue_in(&tx, "reindex", Some("reindex:users"))
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(
        PgQueue::enqueue_in(&tx, "reindex", Some("reindex:users"))
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    assert_eq!(
        PgQueue::enqueue_in(&tx, "reindex", Some("reindex:users"))
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    assert_eq!(queue.counts().await.unwrap().queued, 1);

    // Once it is done, the key is free again.
    let job = queue.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert!(queue.finish(&job, "worker-a").await.unwrap());
    let tx = client.transaction().await.unwrap();
    assert!(
        PgQueue::enqueue_in(&tx, "reindex", Some("reindex:users"))
            .await
            .unwrap()
            .is_some()
    );
    tx.commit().await.unwrap();
}

async fn leader_terms_come_from_the_database_and_only_the_current_one_acts(server: &PgServer) {
    let (queue, _) = queue(server, "leader").await;
    // The first asks: term 1. Another, while it is current: nothing.
    assert_eq!(queue.lead("worker-a", LEASE).await.unwrap(), Some(1));
    assert_eq!(queue.lead("worker-b", LEASE).await.unwrap(), None);
    // A renewal keeps the term.
    assert_eq!(queue.lead("worker-a", LEASE).await.unwrap(), Some(1));

    // A job whose worker died.
    queue.enqueue(1).await.unwrap();
    queue.take("worker-z", 1, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Not the leader: nothing done.
    assert!(
        queue
            .rescue_expired("worker-b", 1)
            .await
            .unwrap()
            .is_empty()
    );

    // `worker-a`'s term runs out (a short one, then a pause): `worker-b`
    // gets the next term, and `worker-a`, acting on its old one, does
    // nothing, in the very statement that would act.
    assert_eq!(
        queue.lead("worker-a", Duration::ZERO).await.unwrap(),
        Some(1)
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(queue.lead("worker-b", LEASE).await.unwrap(), Some(2));
    assert!(
        queue
            .rescue_expired("worker-a", 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(queue.rescue_expired("worker-b", 2).await.unwrap(), [1]);
    assert_eq!(queue.lead("worker-a", LEASE).await.unwrap(), None);

    // Leader-only periodic enqueue: the stale leader enqueues nothing; the
    // current one enqueues the period's job once, however often it asks.
    let hourly = Duration::from_secs(3600);
    let stale = queue.enqueue_scheduled("worker-a", 1, "nightly", hourly);
    assert_eq!(stale.await.unwrap(), None);
    let id = queue
        .enqueue_scheduled("worker-b", 2, "nightly", hourly)
        .await
        .unwrap();
    assert!(id.is_some());
    let again = queue.enqueue_scheduled("worker-b", 2, "nightly", hourly);
    assert_eq!(again.await.unwrap(), None);
    let client = queue.client().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), min(payload) FROM tethered_worker.jobs WHERE payload LIKE 'nightly %'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

async fn migrations_run_once_and_refuse_what_is_not_theirs(server: &PgServer) {
    let url = server.create_database("migrations").await.unwrap();
    // Four workers starting together: one migrates, the others wait for it.
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgQueue::connect(&url, 1).await })
        })
        .collect();
    for connected in connects {
        connected.await.unwrap().unwrap();
    }
    let queue = PgQueue::connect(&url, 1).await.unwrap();
    sql(
        &queue,
        "UPDATE tethered_worker.schema_version SET version = 99",
    )
    .await;
    let error = PgQueue::connect(&url, 1).await.unwrap_err();
    assert!(
        error
            .0
            .contains("made by a newer worker (schema version 99"),
        "{error}"
    );

    let url = server.create_database("foreign").await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE SCHEMA tethered_worker; CREATE TABLE tethered_worker.jobs (x int);")
        .await
        .unwrap();
    let error = PgQueue::connect(&url, 1).await.unwrap_err();
    assert!(
        error.0.contains("holds tables that are not the worker's"),
        "{error}"
    );
}

async fn bad_urls_and_refused_connections_are_one_line(_server: &PgServer) {
    let error = PgQueue::connect("postgres://user@host:notaport/db", 1)
        .await
        .unwrap_err();
    assert!(error.0.contains("is not a PostgreSQL URL"), "{error}");
    // Nothing listens on this port (bound and released just now).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = PgQueue::connect(&format!("postgres://postgres@127.0.0.1:{port}/db"), 1)
        .await
        .unwrap_err();
    assert!(
        error.0.starts_with("cannot set up the queue's tables"),
        "{error}"
    );
    assert!(
        error
            .0
            .ends_with("is PostgreSQL running there, and does the URL name its host and port?"),
        "{error}"
    );
    assert!(!error.0.contains('\n'), "{error}");
}

async fn a_role_without_rights_is_told_which_to_ask_for(server: &PgServer) {
    let url = server.create_database("rights").await.unwrap();
    let role = format!("visitor_{}", std::process::id());
    // The URL's user swapped for the new role (a cluster of the test's own
    // trusts every local user; a server at TETHERED_PG_URL may not).
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, place) = rest.split_once('@').unwrap();
    let visitor_url = format!("{scheme}://{role}@{place}");
    let (elsewhere, _) = queue(server, "rights_admin").await;
    let admin = elsewhere.client().await.unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    drop(admin);
    if let PgServer::External(_) = server
        && let Err(error) = PgQueue::connect(&visitor_url, 1).await
        && error.0.contains("authentication")
    {
        eprintln!("skipped: the server at TETHERED_PG_URL does not let {role} in: {error}");
        return;
    }
    // No right to make the schema.
    let error = PgQueue::connect(&visitor_url, 1).await.unwrap_err();
    assert!(
        error
            .0
            .starts_with("cannot set up the queue's tables: permission denied for database"),
        "{error}"
    );
    assert!(
        error
            .0
            .contains("the URL's role needs CREATE on the database"),
        "{error}"
    );
    assert!(!error.0.contains('\n'), "{error}");
    // The owner makes it; the visitor, with no rights in it yet, is told
    // the same.
    let owners = PgQueue::connect(&url, 1).await.unwrap();
    let error = PgQueue::connect(&visitor_url, 1).await.unwrap_err();
    assert!(
        error
            .0
            .contains("permission denied for schema tethered_worker"),
        "{error}"
    );
    assert!(error.0.contains("USAGE on that schema"), "{error}");
    // Granted what the message names, and nothing more (not CREATE on the
    // database): the visitor works the queue.
    sql(
        &owners,
        &format!(
            "GRANT USAGE ON SCHEMA tethered_worker TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tethered_worker TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA tethered_worker TO {role};"
        ),
    )
    .await;
    let visitor = PgQueue::connect(&visitor_url, 1).await.unwrap();
    assert_eq!(visitor.enqueue(2).await.unwrap(), 2);
    let jobs = visitor.take("visitor", 2, LEASE).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(visitor.finish(&jobs[0], "visitor").await.unwrap());
}
