//! The `cancel_tree` example (`examples/cancel_tree.rs`) reports what it promises.
//!
//! The demo runs on real time (about half a second), on a multi-thread
//! runtime as the example does; the assertions only rely on orderings that
//! tethered guarantees, not on timings.

use std::time::Duration;

use tethered::{CancelKind, CancelReason, EntryKind, EntryState, TaskTree};
use tethered_examples::demo::{self, Ended, ParseError, Report};

fn fate<'r>(report: &'r Report, task: &str) -> &'r Ended {
    &report
        .fates
        .iter()
        .find(|fate| fate.task == task)
        .unwrap_or_else(|| panic!("no fate recorded for `{task}`: {:?}", report.fates))
        .ended
}

fn cancel_reason<'r>(report: &'r Report, task: &str) -> &'r CancelReason {
    match fate(report, task) {
        Ended::Cancelled(reason) => reason,
        other => panic!("`{task}` was not cancelled: {other:?}"),
    }
}

/// The reason names `parser`'s failure as the event that started it all.
fn assert_caused_by_parser(reason: &CancelReason) {
    let root = reason.root();
    assert_eq!(root.kind(), CancelKind::SiblingFailed, "{reason}");
    assert_eq!(root.origin(), Some("parser"), "{reason}");
    assert_eq!(
        root.message(),
        Some("task `parser` failed: line 42: unterminated string")
    );
    assert!(
        root.location().file().ends_with("demo.rs"),
        "{}",
        root.location()
    );
}

fn entry<'t>(tree: &'t TaskTree, name: &str) -> &'t tethered::TreeEntry {
    tree.iter()
        .find(|entry| entry.name() == Some(name))
        .unwrap_or_else(|| panic!("`{name}` not in the tree:\n{tree}"))
}

/// `tethered::tree()` shows every scope in the process: one demo at a time,
/// so that each snapshot shows only its own demo.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run_demo() -> Report {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut printed = None;
    let report = demo::run(|tree| printed = Some(tree.to_string())).await;
    assert_eq!(
        printed.as_deref(),
        Some(report.tree_while_cancelling.to_string().as_str()),
        "the callback sees the snapshot the report keeps"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_reports_who_cancelled_whom_and_why() {
    let report = run_demo().await;
    println!("{}\n{report}", report.tree_while_cancelling);

    // Exactly one failure: `parser`'s, with its own error type.
    let error = &report.error;
    assert_eq!(error.scope(), Some("ingest"));
    assert_eq!(error.failures().len(), 1, "{error}");
    assert_eq!(error.failures()[0].task(), Some("parser"));
    assert_eq!(
        error.downcast_ref::<ParseError>(),
        Some(&ParseError { line: 42 })
    );
    assert_caused_by_parser(error.reason().expect("the failure cancelled `ingest`"));
    assert!(matches!(fate(&report, "parser"), Ended::Failed(_)));

    // `parser`'s siblings are cancelled with the scope's own reason.
    for sibling in ["fetcher", "indexer"] {
        let reason = cancel_reason(&report, sibling);
        assert!(
            reason.same_as(error.reason().unwrap()),
            "{sibling}: {reason}"
        );
    }

    // The shards, two levels down, trace their cancellation back to `parser`.
    for shard in ["shard-0", "shard-1"] {
        assert_caused_by_parser(cancel_reason(&report, shard));
    }

    // The shield was asked to stop, not cancelled, and finished its writes.
    match fate(&report, "flush") {
        Ended::Stopped(reason) => assert_caused_by_parser(reason),
        other => panic!("`flush` was not stopped: {other:?}"),
    }
    assert_eq!(report.flushed, 3);

    // Cleanups: the nested scope's first (it ends before `ingest` can), and
    // each saw why its scope was cancelled.
    let order: Vec<_> = report.cleanups.iter().map(|run| run.cleanup).collect();
    assert_eq!(order, ["close shard files", "close connection"]);
    for run in &report.cleanups {
        let reason = run
            .scope_reason
            .as_ref()
            .unwrap_or_else(|| panic!("{} saw no reason", run.cleanup));
        assert_caused_by_parser(reason);
    }

    // The snapshot was taken mid-cancellation: `ingest` is cancelling and
    // still waits for the shield, which is stopping, not cancelled.
    let tree = &report.tree_while_cancelling;
    let ingest = entry(tree, "ingest");
    assert_eq!(ingest.kind(), EntryKind::Scope);
    assert!(
        matches!(ingest.state(), EntryState::Cancelling(_)),
        "{tree}"
    );
    let flush = entry(tree, "flush");
    assert_eq!(flush.kind(), EntryKind::Shield);
    assert!(matches!(flush.state(), EntryState::Stopping(_)), "{tree}");
    assert!(
        tree.to_string()
            .starts_with("scope `ingest` at examples/src/demo.rs:"),
        "{tree}"
    );

    // Every task ended, and the demo stays quick.
    assert_eq!(report.fates.len(), 6, "{:?}", report.fates);
    assert!(
        report.elapsed < Duration::from_secs(2),
        "{:?}",
        report.elapsed
    );
}

/// What the reason chain of a task two levels below the failure should say:
/// `SiblingFailed` is a reason `ingest` raises about its own children, so it
/// reaches them (`indexer`) unchanged; below them it should travel as
/// `ParentCancelled`, one link per level, like every other reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_reason_names_every_level() {
    let report = run_demo().await;
    let reason = cancel_reason(&report, "shard-0");
    let links: Vec<_> = reason.chain().map(|r| (r.kind(), r.origin())).collect();
    assert_eq!(
        links,
        [
            (CancelKind::ParentCancelled, Some("index")),
            (CancelKind::ParentCancelled, Some("indexer")),
            (CancelKind::SiblingFailed, Some("parser")),
        ],
        "{reason}"
    );
}
