//! `task_dump`: tokio's task dumps placed in the task tree. Runs only with
//! the `taskdump` feature under `--cfg tokio_unstable` (a CI step):
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" cargo test -p tethered --features taskdump --test taskdump
//! ```

#![cfg(all(tokio_unstable, feature = "taskdump"))]

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use tethered::{Scope, task_dump};
use tokio::sync::Notify;

/// Where the task under test is stuck: a named `async fn`, two calls deep,
/// so that its trace has frames to recognise.
async fn wait_for_the_database(ready: Arc<Notify>) {
    commit(&ready).await;
}

async fn commit(ready: &Notify) {
    ready.notified().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_is_followed_by_its_trace() {
    let ready = Arc::new(Notify::new());
    Scope::builder()
        .name("dumped")
        .run(async |scope| {
            let stuck = scope.spawn_named("stuck", wait_for_the_database(ready.clone()));
            // Not a tethered task: listed after the tree.
            let plain = tokio::spawn(pending::<()>());
            tokio::time::sleep(Duration::from_millis(50)).await;

            let dump = tokio::time::timeout(Duration::from_secs(5), task_dump())
                .await
                .expect("the runtime answers");
            let text = dump.to_string();
            let lines: Vec<&str> = text.lines().collect();
            let task = lines
                .iter()
                .position(|line| line.starts_with("  task `stuck` at "))
                .unwrap_or_else(|| panic!("no task line in\n{text}"));
            // Its trace follows it, indented under it, and shows the chain
            // of `.await`s from the task's future down to tokio's `Notify`.
            let trace: Vec<&str> = lines[task + 1..]
                .iter()
                .take_while(|line| line.starts_with("    "))
                .copied()
                .collect();
            let position = |needle: &str| {
                trace
                    .iter()
                    .position(|line| line.contains(needle))
                    .unwrap_or_else(|| panic!("{needle} not in the trace of\n{text}"))
            };
            // It starts at the task's own future, not at tethered's wrapper.
            assert!(
                trace[0]
                    .trim_start()
                    .starts_with("╼ taskdump::wait_for_the_database"),
                "{text}"
            );
            assert!(
                text.lines().all(|line| !line.contains("tethered::node")),
                "{text}"
            );
            assert!(position("wait_for_the_database") < position("taskdump::commit"));
            assert!(position("taskdump::commit") < position("Notified"));
            assert!(text.contains("tokio tasks outside the tree:"), "{text}");
            assert!(
                text.contains(&format!("tokio task {}", plain.id())),
                "{text}"
            );

            // The same trace, by entry.
            let dumped = &dump
                .tree()
                .roots()
                .iter()
                .find(|root| root.name() == Some("dumped"));
            let entry = &dumped.expect("the scope is a root").children()[0];
            assert_eq!(entry.name(), Some("stuck"));
            assert!(dump.trace(entry).unwrap().contains("wait_for_the_database"));

            plain.abort();
            stuck.cancel("dumped");
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_dumps_itself() {
    Scope::run(async |scope| {
        let stuck = scope.spawn_named("stuck", pending::<()>());
        tokio::task::yield_now().await;
        let dump = task_dump().await;
        let text = dump.to_string();
        assert!(text.contains("task `stuck` at "), "{text}");
        stuck.cancel("dumped");
    })
    .await
    .unwrap();
}
