//! One behaviour suite, run against both stores the worker runs on: a
//! SQLite file, and a PostgreSQL database (a throwaway cluster, or
//! `TETHERED_PG_URL`; skipped without server binaries unless
//! `TETHERED_PG_REQUIRED=1`). Whatever the store, a claim is exclusive and
//! fenced, a lost lease says who holds the job, an interrupted job goes back
//! with its claim count moving on, and the counts add up.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{TempDb, runtime};
use tethered_examples::worker::pg_cluster::PgServer;
use tethered_examples::worker::store::{Claimed, Renewal, Store};

const LEASE: Duration = Duration::from_secs(30);

#[test]
fn both_stores_keep_the_same_promises() {
    let runtime = runtime();
    runtime.block_on(async {
        let file = TempDb::new("contract");
        for name in ["exclusive", "lost", "returned"] {
            let db = format!("{}-{name}", file.arg());
            run_suite(name, Store::open(&db, false, 1).await.unwrap()).await;
        }
        let Some(server) = PgServer::for_tests() else {
            return;
        };
        for name in ["exclusive", "lost", "returned"] {
            let url = server.create_database(name).await.unwrap();
            run_suite(name, Store::open(&url, false, 2).await.unwrap()).await;
        }
    });
}

async fn run_suite(name: &str, store: Store) {
    match name {
        "exclusive" => claims_are_exclusive_and_fenced(&store).await,
        "lost" => a_lost_lease_says_who_holds_the_job(&store).await,
        _ => an_interrupted_job_goes_back_and_its_next_claim_fences_the_old(&store).await,
    }
}

async fn claims_are_exclusive_and_fenced(store: &Store) {
    assert_eq!(store.enqueue(6).await.unwrap(), 6);
    let a = store.take("worker-a", 3, LEASE).await.unwrap();
    let b = store.take("worker-b", 3, LEASE).await.unwrap();
    assert_eq!((a.len(), b.len()), (3, 3));
    assert!(a.iter().all(|job| b.iter().all(|other| other.id != job.id)));
    assert!(store.take("worker-c", 3, LEASE).await.unwrap().is_empty());

    let job = &a[0];
    assert!(!store.finish(job, "worker-b").await.unwrap(), "{store:?}");
    let stale = Claimed {
        claim: job.claim - 1,
        ..job.clone()
    };
    assert!(
        !store.finish(&stale, "worker-a").await.unwrap(),
        "{store:?}"
    );
    assert!(store.finish(job, "worker-a").await.unwrap());
    assert!(
        !store.finish(job, "worker-a").await.unwrap(),
        "finished twice"
    );
    assert_eq!(store.held_by("worker-a").await.unwrap(), 2);
    assert_eq!(store.release_all("worker-a").await.unwrap().len(), 2);
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.queued, counts.taken, counts.done),
        (2, 3, 1),
        "{store:?}"
    );
}

async fn a_lost_lease_says_who_holds_the_job(store: &Store) {
    store.enqueue(1).await.unwrap();
    let old = store.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(
        store.renew(&old, "worker-a", LEASE).await.unwrap(),
        Renewal::Renewed
    );
    // The job is claimed again by another (as after a rescue, or an
    // expired lease taken over).
    assert!(store.release(&old, "worker-a").await.unwrap());
    let new = store.take("worker-b", 1, LEASE).await.unwrap().remove(0);
    assert_eq!((new.id, new.claim), (old.id, old.claim + 1));
    let Renewal::Lost(lost) = store.renew(&old, "worker-a", LEASE).await.unwrap() else {
        panic!("renewed a job another worker holds: {store:?}");
    };
    assert_eq!(
        lost.to_string(),
        format!(
            "lease lost: job {} now held by worker-b (claim {})",
            old.id, new.claim
        )
    );
    assert!(!store.release(&old, "worker-a").await.unwrap());
    assert!(store.finish(&new, "worker-b").await.unwrap());
}

async fn an_interrupted_job_goes_back_and_its_next_claim_fences_the_old(store: &Store) {
    store.enqueue(1).await.unwrap();
    let first = store.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert!(store.release(&first, "worker-a").await.unwrap());
    assert_eq!(store.counts().await.unwrap().queued, 1);
    // Taken again by the same worker: a new claim, and the old one is
    // fenced even though the owner is the same.
    let second = store.take("worker-a", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(second.claim, first.claim + 1);
    assert!(
        !store.finish(&first, "worker-a").await.unwrap(),
        "{store:?}"
    );
    assert!(store.finish(&second, "worker-a").await.unwrap());
    assert_eq!(store.counts().await.unwrap().done, 1);
}
