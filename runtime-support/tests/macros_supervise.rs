//! What `supervise!` expands into, checked by behaviour under paused time.
//! (Its grammar and its errors are pinned by the ui tests.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::sleep;

/// Counts its start, then runs until the supervisor stops it.
async fn until_stopped(starts: Arc<AtomicU32>) {
    starts.fetch_add(1, Ordering::SeqCst);
    tethered::stop_requested().await;
}

/// The names of the children a supervisor had when it shut down, sorted.
fn children(supervised: &tethered::Supervised<()>) -> Vec<&str> {
    let mut names: Vec<&str> = supervised
        .report
        .children()
        .iter()
        .filter_map(|child| child.name())
        .collect();
    names.sort_unstable();
    names
}

/// A child under a `#[cfg(…)]` that is off is not declared at all; one
/// that is on is declared as any other.
#[tokio::test(start_paused = true)]
async fn a_child_compiled_out_is_not_declared() {
    let starts = Arc::new(AtomicU32::new(0));
    let supervised = tethered::supervise! {
        child "first" => until_stopped(starts.clone()),
        #[cfg(not(test))]
        child "compiled-out" => until_stopped(starts.clone()),
        #[cfg(test)]
        child "compiled-in" => until_stopped(starts.clone()),
        body |_| sleep(Duration::from_secs(1)).await,
    }
    .unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(children(&supervised), ["compiled-in", "first"]);
}

/// Two children of one name under opposite `#[cfg(…)]`s: one of them, in
/// every build.
#[tokio::test(start_paused = true)]
async fn children_of_one_name_under_opposite_cfgs() {
    let starts = Arc::new(AtomicU32::new(0));
    let supervised = tethered::supervise! {
        #[cfg(test)]
        child "store" => until_stopped(starts.clone()),
        #[cfg(not(test))]
        child "store" => until_stopped(starts.clone()),
        body |_| sleep(Duration::from_secs(1)).await,
    }
    .unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    assert_eq!(children(&supervised), ["store"]);
}

/// A static child is located where it is declared, at its `child`.
#[tokio::test(start_paused = true)]
async fn a_child_is_located_at_its_declaration() {
    let starts = Arc::new(AtomicU32::new(0));
    let line = line!() + 3;
    let supervised = tethered::supervise! {
        name: "located",
        child "here" => until_stopped(starts.clone()),
        body |_| sleep(Duration::from_secs(1)).await,
    }
    .unwrap();
    let location = supervised.report.child("here").unwrap().location();
    assert_eq!((location.file(), location.line()), (file!(), line));
    assert_eq!(location.column(), 9);
}

/// Runs until asked to stop, then takes `flush` to finish.
async fn flushing(flush: Duration) {
    tethered::stop_requested().await;
    sleep(flush).await;
}

/// Each child's `shutdown` option is its own budget: stopped last declared
/// first, each within its own time.
#[tokio::test(start_paused = true)]
async fn each_childs_shutdown_option_is_its_own_budget() {
    let started = tokio::time::Instant::now();
    let drain = Duration::from_secs(5);
    let supervised = tethered::supervise! {
        shutdown: grace "1s" then cancel "1s",
        // Stopped last: needs 3 s, is given (drain) = 5 s, ends cleanly.
        child "writer" (shutdown (drain)) => flushing(Duration::from_secs(3)),
        // Needs 3 s, is given 2 s: cancelled.
        child "slow" (shutdown "2s") => flushing(Duration::from_secs(3)),
        // Cancelled at once.
        child "metrics" (shutdown brutal) => std::future::pending::<()>(),
        body |_| {},
    }
    .unwrap();
    let report = supervised.report;
    let ended: Vec<(&str, bool, Duration)> = report
        .children()
        .iter()
        .map(|child| {
            let tethered::ChildEnd::Exited { exit, after } = child.end() else {
                panic!("{child}")
            };
            let completed = matches!(exit, tethered::ChildExit::Completed);
            (child.name().unwrap(), completed, *after)
        })
        .collect();
    assert_eq!(
        ended,
        [
            ("metrics", false, Duration::ZERO),
            ("slow", false, Duration::from_secs(2)),
            ("writer", true, Duration::from_secs(5)),
        ]
    );
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}
