//! Every macro of tethered, reached through `tt`, the name this crate's
//! Cargo.toml gives it. A path in an expansion that said `::tethered` would
//! not compile here.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::sleep;

#[tt::scoped(crate = tt, name = "renamed", timeout = "10s")]
async fn every_scoped_macro(log: Arc<Mutex<Vec<&'static str>>>) -> Result<u32, tt::ScopeError> {
    let cleaned = log.clone();
    defer!(async move { cleaned.lock().unwrap().push("deferred") });
    let doubled = spawn!("double", async { 21 * 2 });
    // Through the crate's own name, too.
    let shielded = log.clone();
    tt::shield!(async move { shielded.lock().unwrap().push("shielded") });
    let blocking = spawn_blocking!(|| 1);
    assert_eq!(scope!().name(), Some("renamed"));
    let value = doubled.join().await.unwrap() + blocking.join().await.unwrap();
    Ok(value - 1)
}

#[tokio::test(start_paused = true)]
async fn scoped_with_a_renamed_crate() {
    let log = Arc::new(Mutex::new(Vec::new()));
    assert_eq!(every_scoped_macro(log.clone()).await.unwrap(), 42);
    let mut log = log.lock().unwrap().clone();
    log.sort_unstable();
    assert_eq!(log, ["deferred", "shielded"]);
}

#[tt::scoped(crate = "tt", on_exit = cancel)]
async fn written_as_a_string(ticks: Arc<AtomicU32>) {
    // A future that never returns: spawned as a future of `!`.
    spawn!(async move {
        loop {
            ticks.fetch_add(1, Ordering::SeqCst);
            sleep(Duration::from_secs(1)).await;
        }
    });
    sleep(Duration::from_millis(2_500)).await;
}

#[tokio::test(start_paused = true)]
async fn the_crate_option_may_be_a_string() {
    let ticks = Arc::new(AtomicU32::new(0));
    written_as_a_string(ticks.clone()).await;
    assert_eq!(ticks.load(Ordering::SeqCst), 3);
}

#[tt::periodic(crate = tt, every = "1s", overlap = skip)]
async fn count(hits: Arc<AtomicU32>) -> Result<(), std::convert::Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn periodic_with_a_renamed_crate() {
    let hits = Arc::new(AtomicU32::new(0));
    let stats = tt::Scope::run(async |scope| {
        let handle = scope.spawn(count(hits.clone()));
        sleep(Duration::from_millis(2_500)).await;
        handle.stop("done");
        handle.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(stats.completed, 3);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

async fn until_stopped(starts: Arc<AtomicU32>) {
    starts.fetch_add(1, Ordering::SeqCst);
    tt::stop_requested().await;
}

#[tokio::test(start_paused = true)]
async fn supervise_with_a_renamed_crate() {
    let starts = Arc::new(AtomicU32::new(0));
    let supervised = tt::supervise! {
        name: "renamed",
        shutdown: grace "1s",
        child "worker" (transient, backoff "10ms".."1s") => until_stopped(starts.clone()),
        body |sv| {
            sleep(Duration::from_secs(1)).await;
            sv.stats()
        },
    }
    .unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    assert_eq!(supervised.report.supervisor(), Some("renamed"));
    assert_eq!(supervised.value.unwrap().started, 1);
}

#[tokio::test(start_paused = true)]
async fn supervise_without_a_body_with_a_renamed_crate() {
    // The default body names the crate too.
    let supervised = tt::Scope::run(async |scope| {
        let supervisor = scope.spawn(async {
            tt::supervise! {
                child "idle" => async { tt::stop_requested().await; },
            }
        });
        sleep(Duration::from_secs(1)).await;
        supervisor.stop("done");
        supervisor.join().await.unwrap()
    })
    .await
    .unwrap();
    assert!(supervised.is_ok(), "{supervised:?}");
}

#[tt::test(crate = tt, start_paused = true)]
async fn the_test_attribute_with_a_renamed_crate() {
    let child = spawn!("child", async { 7 });
    defer!(async {});
    assert_eq!(child.join().await.unwrap(), 7);
    assert_eq!(scope!().name(), Some("test"));
}
