//! `tethered::tree()`: a snapshot of the live task tree.
//!
//! The tree is process-wide, so every test here runs alone (one at a time,
//! on its own paused runtime) and can assert on the whole tree.

mod common;

use std::future::{Future, pending};
use std::sync::Mutex;

use common::{Probe, secs};
use tethered::{CancelKind, EntryKind, EntryState, OnExit, Scope, TaskTree, TreeEntry};
use tokio::time::sleep;

/// Runs `test` alone, on a fresh current-thread runtime with paused time.
fn alone<F: Future<Output = ()>>(test: F) {
    static ALONE: Mutex<()> = Mutex::new(());
    let _alone = ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    assert!(
        tethered::tree().is_empty(),
        "a previous test left tasks behind:\n{}",
        tethered::tree()
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(test);
}

fn find<'t>(tree: &'t TaskTree, name: &str) -> &'t TreeEntry {
    tree.iter()
        .find(|entry| entry.name() == Some(name))
        .unwrap_or_else(|| panic!("no entry named `{name}` in\n{tree}"))
}

fn child_names(entry: &TreeEntry) -> Vec<Option<&str>> {
    entry.children().iter().map(TreeEntry::name).collect()
}

#[test]
fn tree_is_empty_outside_any_scope() {
    alone(async {
        let tree = tethered::tree();
        assert!(tree.is_empty());
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.to_string(), "(no live tasks)\n");
    });
}

#[test]
fn tree_shows_names_kinds_and_nesting() {
    alone(async {
        let tree = Scope::builder()
            .name("server")
            .run(async |scope| {
                let conn = scope.spawn_named("conn-1", pending::<()>());
                let flush = scope.shield_named("flush", sleep(secs(10)));
                let worker = scope.spawn_named("worker", async {
                    Scope::builder()
                        .name("batch")
                        .on_exit(OnExit::Cancel)
                        .run(async |batch| {
                            batch.spawn_named("item", pending::<()>());
                            pending::<()>().await
                        })
                        .await
                });
                scope.spawn(pending::<()>());
                sleep(secs(1)).await;
                let tree = tethered::tree();
                conn.cancel("done");
                worker.cancel("done");
                flush.cancel("done");
                scope.cancel("done");
                tree
            })
            .await
            .unwrap();

        assert_eq!(tree.roots().len(), 1, "{tree}");
        let server = &tree.roots()[0];
        assert_eq!(server.name(), Some("server"));
        assert_eq!(server.kind(), EntryKind::Scope);
        assert!(matches!(server.state(), EntryState::Running));
        assert_eq!(
            child_names(server),
            [Some("conn-1"), Some("flush"), Some("worker"), None]
        );
        let kinds: Vec<EntryKind> = server.children().iter().map(TreeEntry::kind).collect();
        assert_eq!(
            kinds,
            [
                EntryKind::Task,
                EntryKind::Shield,
                EntryKind::Task,
                EntryKind::Task
            ]
        );
        let batch = find(&tree, "batch");
        assert_eq!(batch.kind(), EntryKind::Scope);
        assert_eq!(child_names(find(&tree, "worker")), [Some("batch")]);
        assert_eq!(child_names(batch), [Some("item")]);
        assert_eq!(tree.len(), 7);
        let order: Vec<Option<&str>> = tree.iter().map(TreeEntry::name).collect();
        assert_eq!(
            order,
            [
                Some("server"),
                Some("conn-1"),
                Some("flush"),
                Some("worker"),
                Some("batch"),
                Some("item"),
                None
            ],
            "depth first"
        );
        assert!(tethered::tree().is_empty(), "{}", tethered::tree());
    });
}

#[test]
fn tree_entries_carry_spawn_locations_and_ages() {
    alone(async {
        let mut spawn_line = 0;
        let tree = Scope::run(async |scope| {
            sleep(secs(2)).await;
            spawn_line = line!() + 1;
            let task = scope.spawn_named("young", pending::<()>());
            sleep(secs(3)).await;
            let tree = tethered::tree();
            task.cancel("done");
            tree
        })
        .await
        .unwrap();
        let young = find(&tree, "young");
        assert_eq!(young.location().file(), file!());
        assert_eq!(young.location().line(), spawn_line);
        assert_eq!(young.age(), secs(3));
        assert_eq!(tree.roots()[0].age(), secs(5));
    });
}

#[test]
fn tree_display_is_an_indented_tree() {
    alone(async {
        let text = Scope::builder()
            .name("root")
            .run(async |scope| {
                let task = scope.spawn_named("parent-task", async {
                    Scope::builder()
                        .name("nested")
                        .run(async |nested| {
                            nested.spawn_named("leaf", pending::<()>());
                            pending::<()>().await
                        })
                        .await
                });
                tokio::task::yield_now().await;
                let text = tethered::tree().to_string();
                let snapshot = tethered::testing::snapshot(&tethered::tree());
                task.cancel("done");
                (text, snapshot)
            })
            .await
            .unwrap();
        let (text, snapshot) = text;
        // What the test kit's snapshot keeps: kinds, names, files, states.
        let file = file!();
        assert_eq!(
            snapshot,
            format!(
                "scope `root` at {file} [running]\n  \
                 task `parent-task` at {file} [running]\n    \
                 scope `nested` at {file} [running]\n      \
                 task `leaf` at {file} [running]\n"
            )
        );
        // And what it masks: the line and column, the age.
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains(&format!("{file}:")), "{text}");
        assert!(
            lines.iter().all(|line| line.contains("[running, age ")),
            "{text}"
        );
    });
}

#[test]
fn tree_shows_a_cancelled_task_finishing_its_cancellation_with_the_reason() {
    alone(async {
        let tree = Scope::builder()
            .name("app")
            .run(async |scope| {
                let stubborn = scope.spawn_named("stubborn", async {
                    Scope::builder()
                        .name("inner")
                        .run(async |inner| {
                            inner.shield_named("saving", sleep(secs(5)));
                            pending::<()>().await
                        })
                        .await
                });
                sleep(secs(1)).await;
                stubborn.cancel("go away");
                sleep(secs(1)).await;
                let tree = tethered::tree();
                assert!(stubborn.join().await.is_cancelled());
                tree
            })
            .await
            .unwrap();

        let stubborn = find(&tree, "stubborn");
        match stubborn.state() {
            EntryState::Cancelling(reason) => {
                assert_eq!(reason.kind(), CancelKind::Explicit);
                assert_eq!(reason.message(), Some("go away"));
            }
            other => panic!("unexpected state {other:?}\n{tree}"),
        }
        let inner = find(&tree, "inner");
        match inner.state() {
            EntryState::Orphaned(reason) => {
                assert_eq!(reason.kind(), CancelKind::ParentCancelled);
                assert_eq!(reason.root().message(), Some("go away"));
            }
            other => panic!("unexpected state {other:?}\n{tree}"),
        }
        let saving = find(&tree, "saving");
        assert_eq!(saving.kind(), EntryKind::Shield);
        match saving.state() {
            EntryState::Stopping(reason) => {
                assert_eq!(reason.root().message(), Some("go away"));
            }
            other => panic!("unexpected state {other:?}\n{tree}"),
        }
        assert!(matches!(find(&tree, "app").state(), EntryState::Running));
        let text = tree.to_string();
        assert!(text.contains("cancelling: cancelled: go away"), "{text}");
        assert!(text.contains("stopping: parent cancelled"), "{text}");
    });
}

#[test]
fn tree_shows_a_scope_in_cleanup_and_its_cleanup_phase() {
    alone(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        Scope::builder()
            .name("closing")
            .run(async |scope| {
                scope.defer(async move {
                    sleep(secs(1)).await;
                    let _ = tx.send(tethered::tree());
                });
            })
            .await
            .unwrap();
        let tree = rx.await.unwrap();
        let closing = find(&tree, "closing");
        assert!(
            matches!(closing.state(), EntryState::InCleanup),
            "{:?}",
            closing.state()
        );
        assert_eq!(closing.children().len(), 1, "{tree}");
        let phase = &closing.children()[0];
        assert_eq!(phase.kind(), EntryKind::Cleanup);
        assert!(matches!(phase.state(), EntryState::Running));
        assert_eq!(phase.age(), secs(1));
        assert!(tree.to_string().contains("[in cleanup"), "{tree}");
        assert!(tethered::tree().is_empty());
    });
}

#[test]
fn tree_shows_stopping_tasks_with_the_stop_reason() {
    alone(async {
        let tree = Scope::run(async |scope| {
            let worker = scope.spawn_named("worker", async {
                tethered::stop_requested().await;
                sleep(secs(1)).await;
            });
            scope.spawn_named("idle", sleep(secs(1)));
            tokio::task::yield_now().await;
            worker.stop("drain");
            let tree = tethered::tree();
            worker.join().await.unwrap();
            tree
        })
        .await
        .unwrap();
        match find(&tree, "worker").state() {
            EntryState::Stopping(reason) => assert_eq!(reason.message(), Some("drain")),
            other => panic!("unexpected state {other:?}"),
        }
        assert!(matches!(find(&tree, "idle").state(), EntryState::Running));
    });
}

#[test]
fn finished_tasks_leave_the_tree_at_once() {
    alone(async {
        Scope::builder()
            .name("long-lived")
            .run(async |scope| {
                let done = scope.spawn_named("short", async { 1 });
                let keeper = scope.spawn_named("keeper", pending::<()>());
                done.join().await.unwrap();
                let tree = tethered::tree();
                assert_eq!(
                    child_names(find(&tree, "long-lived")),
                    [Some("keeper")],
                    "{tree}"
                );
                keeper.cancel("done");
            })
            .await
            .unwrap();
    });
}

#[test]
fn tree_is_empty_after_scopes_end_however_they_end() {
    alone(async {
        let probe = Probe::new();
        // Success.
        Scope::run(async |scope| {
            scope.spawn(sleep(secs(1)));
        })
        .await
        .unwrap();
        assert!(tethered::tree().is_empty(), "{}", tethered::tree());
        // Failure.
        Scope::run(async |scope| {
            scope.spawn(pending::<()>());
            scope.spawn_fallible(async { Err::<(), _>("x") });
        })
        .await
        .unwrap_err();
        assert!(tethered::tree().is_empty(), "{}", tethered::tree());
        // Timeout, with a nested scope and a cleanup.
        Scope::builder()
            .timeout(secs(1))
            .run(async |scope| {
                scope.defer(sleep(secs(1)));
                scope.spawn(async {
                    Scope::run(async |inner| inner.spawn(pending::<()>()).join().await).await
                });
                pending::<()>().await
            })
            .await
            .unwrap_err();
        assert!(tethered::tree().is_empty(), "{}", tethered::tree());
        // Dropped inside a task.
        Scope::run(async |scope| {
            scope.spawn(async {
                let _ = tokio::time::timeout(
                    secs(1),
                    Scope::run(async |inner| {
                        inner.shield(sleep(secs(2)));
                        pending::<()>().await
                    }),
                )
                .await;
            });
        })
        .await
        .unwrap();
        assert!(tethered::tree().is_empty(), "{}", tethered::tree());
        // Dropped with no tethered task around it: empty once it finished.
        let _ = tokio::time::timeout(
            secs(1),
            Scope::run(async |inner| {
                inner.shield(probe.sleep(secs(2)));
                pending::<()>().await
            }),
        )
        .await;
        assert_eq!(tethered::tree().len(), 2, "{}", tethered::tree());
        sleep(secs(2)).await;
        assert!(probe.finished());
        tokio::task::yield_now().await;
        assert!(tethered::tree().is_empty(), "{}", tethered::tree());
    });
}

/// A scope hands an ended child's bookkeeping to a later child: nothing of
/// the old one (its name, age, or cancellation) may show through.
#[test]
fn children_spawned_after_many_ended_ones_carry_nothing_of_them() {
    alone(async {
        Scope::builder()
            .name("churn")
            .run(async |scope| {
                // 100 ended children, half of them cancelled.
                let old: Vec<_> = (0..100)
                    .map(|i| scope.spawn_named(format!("old-{i}"), pending::<()>()))
                    .collect();
                sleep(secs(1)).await;
                for (i, handle) in old.into_iter().enumerate() {
                    if i % 2 == 0 {
                        handle.cancel("old and cancelled");
                        assert!(handle.join().await.is_cancelled());
                    } else {
                        assert!(handle.cancel_and_wait("old").await.is_cancelled());
                    }
                }
                sleep(secs(5)).await;
                let new: Vec<_> = (0..100)
                    .map(|i| {
                        scope.spawn_named(format!("new-{i}"), async move {
                            sleep(secs(1)).await;
                            i
                        })
                    })
                    .collect();
                let tree = tethered::tree();
                let churn = find(&tree, "churn");
                let names: Vec<_> = child_names(churn).into_iter().flatten().collect();
                assert_eq!(names.len(), 100, "{tree}");
                assert!(names.iter().all(|name| name.starts_with("new-")), "{tree}");
                for entry in churn.children() {
                    assert!(matches!(entry.state(), EntryState::Running), "{tree}");
                    assert_eq!(entry.age(), secs(0), "{tree}");
                }
                for (i, handle) in new.into_iter().enumerate() {
                    assert!(handle.cancel_reason().is_none());
                    assert_eq!(handle.join().await.completed(), Some(i));
                }
                let tree = tethered::tree();
                assert!(find(&tree, "churn").children().is_empty(), "{tree}");
            })
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------------------
// Deep trees: every walk is iterative, every text linear in the tree's size
// ---------------------------------------------------------------------------

/// How deep the deep trees go: task → scope → task → …, 10,000 levels (20,000
/// nodes). Each level is a task of its own, so building it needs no stack;
/// every walk over it must not need one either.
const DEPTH: usize = 10_000;

/// A task that runs a scope holding the next level, down to a leaf that
/// waits for ever; the leaf signals when the whole chain is built.
fn level(depth: usize, built: std::sync::Arc<tokio::sync::Notify>) -> futures_box::Boxed {
    Box::pin(async move {
        if depth == 0 {
            built.notify_one();
            return pending::<()>().await;
        }
        let _ = Scope::builder()
            .name(format!("level-{depth}"))
            .run(async |scope| {
                scope.spawn_named(format!("task-{depth}"), level(depth - 1, built));
            })
            .await;
    })
}

mod futures_box {
    pub(super) type Boxed = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// Runs `check` on a thread with a small stack (256 KiB, an eighth of a
/// tokio worker's): whatever it does must not recurse once per level.
fn on_a_small_stack<T: Send + 'static>(check: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(check)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_tree_ten_thousand_levels_deep_is_captured_printed_cancelled_and_dropped() {
    alone(async {
        let built = std::sync::Arc::new(tokio::sync::Notify::new());
        let ended = Scope::builder()
            .name("root")
            .run(async |scope| {
                // A `'static` handle, to cancel it from another thread.
                let chain = scope
                    .handle()
                    .try_spawn_named("chain", level(DEPTH, built.clone()))
                    .unwrap();
                built.notified().await;

                let (entries, deepest, text) = on_a_small_stack(|| {
                    let tree = tethered::tree();
                    let deepest = tree
                        .iter()
                        .filter(|entry| entry.children().is_empty())
                        .count();
                    let text = tree.to_string();
                    #[cfg(feature = "serde")]
                    {
                        let json = serde_json::to_value(&tree).unwrap();
                        let rows = json["entries"].as_array().unwrap();
                        assert_eq!(rows.last().unwrap()["depth"], 2 * DEPTH + 1);
                    }
                    let copy = tree.clone();
                    drop(tree);
                    (copy.len(), deepest, text)
                });
                // root, chain, then a scope and a task per level.
                assert_eq!(entries, 2 + 2 * DEPTH);
                assert_eq!(deepest, 1);
                assert_eq!(text.lines().count(), entries);
                let longest = text.lines().map(str::len).max().unwrap();
                assert!(longest < 400, "indentation is capped: {longest} bytes");

                // The cancel walk reaches the leaf, twenty thousand nodes down.
                let node = chain;
                on_a_small_stack(move || node.cancel("tear down"));
                let text = on_a_small_stack(|| tethered::tree().to_string());
                // Every line shows its reason, in a bounded form: linear.
                assert!(text.len() < 2_000 * DEPTH, "{} bytes", text.len());
                assert!(text.contains("tear down"));
            })
            .await;
        assert!(ended.is_ok(), "{ended:?}");
        assert!(tethered::tree().is_empty());
    });
}

#[test]
fn a_stop_walks_a_tree_ten_thousand_levels_deep() {
    alone(async {
        let built = std::sync::Arc::new(tokio::sync::Notify::new());
        Scope::run(async |scope| {
            let chain = scope
                .handle()
                .try_spawn_named("chain", level(DEPTH, built.clone()))
                .unwrap();
            built.notified().await;
            on_a_small_stack(move || {
                chain.stop("drain");
                chain
            })
            .cancel("done");
        })
        .await
        .unwrap();
        assert!(tethered::tree().is_empty());
    });
}

#[cfg(feature = "serde")]
#[test]
fn tree_serializes_as_a_flat_list_with_depths_and_parents() {
    alone(async {
        Scope::builder()
            .name("server")
            .run(async |scope| {
                let conn = scope.spawn_named("conn-1", pending::<()>());
                let flush = scope.shield_named("flush", async {
                    tethered::stop_requested().await;
                    pending::<()>().await
                });
                sleep(secs(2)).await;
                flush.stop("deploy");
                tokio::task::yield_now().await;
                let json = serde_json::to_value(tethered::tree()).unwrap();
                let rows = json["entries"].as_array().unwrap();
                let names: Vec<&str> = rows
                    .iter()
                    .map(|row| row["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, ["server", "conn-1", "flush"], "{json:#}");
                assert_eq!(rows[0]["parent"], serde_json::Value::Null);
                assert_eq!(rows[0]["kind"], "scope");
                assert_eq!(rows[1]["parent"], 0);
                assert_eq!(rows[1]["depth"], 1);
                assert_eq!(rows[1]["kind"], "task");
                assert_eq!(rows[1]["state"], "running");
                assert_eq!(rows[1]["reason"], serde_json::Value::Null);
                assert_eq!(rows[1]["age_ms"], 2_000);
                assert!(
                    rows[1]["location"]
                        .as_str()
                        .unwrap()
                        .contains("tests/tree.rs")
                );
                assert_eq!(rows[2]["kind"], "shield");
                assert_eq!(rows[2]["state"], "stopping");
                assert!(rows[2]["reason"].as_str().unwrap().contains("deploy"));
                conn.cancel("done");
                flush.cancel("done");
            })
            .await
            .unwrap();
    });
}

/// Waits for ever at a known line.
#[tethered::scoped]
async fn stuck_in_commit() {
    let handle = spawn!("flusher", async {
        std::future::pending::<()>().await; // the flusher's wait
    });
    std::future::pending::<()>().await; // the commit
    handle.cancel("unreachable");
}

#[test]
fn the_tree_shows_the_await_each_task_and_scope_waits_at() {
    alone(async {
        Scope::builder()
            .name("root")
            .run(async |scope| {
                let stuck = scope.spawn_named("job", stuck_in_commit());
                sleep(secs(1)).await;
                let tree = tethered::tree();
                let source = include_str!("tree.rs");
                let line_of = |needle: &str| {
                    1 + source
                        .lines()
                        .position(|line| line.contains(needle))
                        .unwrap()
                };
                let scope_entry = find(&tree, "stuck_in_commit");
                let site = scope_entry.waiting_at().expect("the scope's body waits");
                assert!(site.file().ends_with("tests/tree.rs"), "{site}");
                assert_eq!(site.line() as usize, line_of("// the commit"));
                assert_eq!(site.code(), "std::future::pending::<()>().await");
                let flusher = find(&tree, "flusher").waiting_at().unwrap();
                assert_eq!(flusher.line() as usize, line_of("// the flusher's wait"));
                // Not expanded by tethered's macros: nothing recorded.
                assert!(find(&tree, "job").waiting_at().is_none());
                let text = tree.to_string();
                assert!(
                    text.contains(&format!(
                        "[running, waiting at {}:{}:",
                        site.file(),
                        line_of("// the commit")
                    )),
                    "{text}"
                );
                assert!(
                    text.contains("(std::future::pending::<()>().await), age 1s]"),
                    "{text}"
                );
                stuck.cancel("done");
            })
            .await
            .unwrap();
    });
}
