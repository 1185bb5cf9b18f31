//! The `cancel_tree` demo: a small tree of tasks in which one worker fails.
//!
//! ```text
//! scope `ingest`
//! ├── task `fetcher`          fetches batches until cancelled
//! ├── task `parser`           fails after 150 ms
//! ├── task `indexer`
//! │   └── scope `index`
//! │       ├── task `shard-0`  indexes until cancelled
//! │       ├── task `shard-1`  indexes until cancelled
//! │       └── defer           "close shard files" (takes 150 ms)
//! ├── shield `flush`          on stop, flushes pending writes (takes 300 ms)
//! └── defer                   "close connection"
//! ```
//!
//! When `parser` fails, `ingest` is cancelled: `fetcher` and `indexer` are
//! cancelled with the very reason naming `parser`, `index` and its shards
//! inherit it one level at a time, `flush` is asked to stop and finishes its
//! writes, and the cleanups run once everything under their scope has ended.
//! An observer prints [`tethered::tree()`] in the middle of all that. Every
//! task records, as it ends, what ended it, and [`run`] returns it all in a
//! [`Report`].
//!
//! It runs on real time and takes about half a second.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethered::{CancelReason, Scope, ScopeError, TaskTree};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep};

/// The error the `parser` task fails with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The input line that could not be parsed.
    pub line: u32,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: unterminated string", self.line)
    }
}

impl std::error::Error for ParseError {}

/// How one task of the demo ended.
#[derive(Debug, Clone)]
pub enum Ended {
    /// It returned an error: it is the failure that cancelled everything.
    Failed(String),
    /// It was cancelled, for this reason.
    Cancelled(CancelReason),
    /// It was asked to stop, for this reason, and finished its work first.
    Stopped(CancelReason),
    /// It returned on its own.
    Returned,
}

/// One task and how it ended.
#[derive(Debug, Clone)]
pub struct Fate {
    /// The task's name.
    pub task: &'static str,
    /// How it ended.
    pub ended: Ended,
}

/// One deferred cleanup that ran.
#[derive(Debug, Clone)]
pub struct CleanupRun {
    /// What it cleaned up.
    pub cleanup: &'static str,
    /// Why its scope was cancelled, as the cleanup saw it (`None`: it was not).
    pub scope_reason: Option<CancelReason>,
}

/// Everything the demo observed.
#[derive(Debug)]
pub struct Report {
    /// [`tethered::tree()`] taken while `ingest` was cancelling.
    pub tree_while_cancelling: TaskTree,
    /// Every task, in tree order, with what ended it.
    pub fates: Vec<Fate>,
    /// The cleanups, in the order they ran.
    pub cleanups: Vec<CleanupRun>,
    /// How many pending writes the `flush` shield wrote.
    pub flushed: usize,
    /// What `Scope::run` returned for `ingest`.
    pub error: ScopeError,
    /// How long the whole demo took.
    pub elapsed: Duration,
}

/// The tasks in tree order, for the report.
const TASKS: [&str; 6] = [
    "fetcher", "parser", "indexer", "shard-0", "shard-1", "flush",
];

/// A shared notebook every task writes its fate into.
#[derive(Clone, Default)]
struct Notebook {
    fates: Arc<Mutex<Vec<Fate>>>,
    cleanups: Arc<Mutex<Vec<CleanupRun>>>,
}

impl Notebook {
    /// A witness for `task`: it writes down how the task ended when the
    /// task's future is dropped, which happens however the task ends.
    fn witness(&self, task: &'static str) -> Witness {
        Witness {
            task,
            ended: None,
            notebook: self.clone(),
        }
    }

    fn cleanup_ran(&self, cleanup: &'static str) {
        // In a cleanup, `current()` answers for the scope being cleaned up.
        let scope_reason = tethered::current().cancel_reason();
        lock(&self.cleanups).push(CleanupRun {
            cleanup,
            scope_reason,
        });
    }
}

struct Witness {
    task: &'static str,
    ended: Option<Ended>,
    notebook: Notebook,
}

impl Witness {
    /// Writes down an ending the witness cannot see for itself.
    fn record(mut self, ended: Ended) {
        self.ended = Some(ended);
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        // A cancelled task's future is dropped *as that task*, so
        // `current()` can still say why it is going away.
        let ended =
            self.ended
                .take()
                .unwrap_or_else(|| match tethered::current().cancel_reason() {
                    Some(reason) => Ended::Cancelled(reason),
                    None => Ended::Returned,
                });
        lock(&self.notebook.fates).push(Fate {
            task: self.task,
            ended,
        });
    }
}

/// Runs the demo. `on_tree` is called with the snapshot of the task tree as
/// soon as it is taken, while the scope is still cancelling.
pub async fn run(on_tree: impl FnOnce(&TaskTree)) -> Report {
    let started = Instant::now();
    let notebook = Notebook::default();
    let flushing = Arc::new(Notify::new());
    let flushed = Arc::new(Mutex::new(0));

    let ingest = Scope::builder().name("ingest").run(async |scope| {
        // Registered first, so it runs last: after every child has ended.
        let book = notebook.clone();
        scope.defer(async move {
            sleep(Duration::from_millis(50)).await;
            book.cleanup_ran("close connection");
        });

        let witness = notebook.witness("fetcher");
        scope.spawn_named("fetcher", async move {
            let _witness = witness;
            loop {
                sleep(Duration::from_millis(40)).await; // fetch a batch
            }
        });

        let witness = notebook.witness("parser");
        scope.spawn_fallible_named("parser", async move {
            sleep(Duration::from_millis(150)).await; // parse until line 42...
            let error = ParseError { line: 42 };
            witness.record(Ended::Failed(error.to_string()));
            Err::<(), _>(error)
        });

        let book = notebook.clone();
        let witness = notebook.witness("indexer");
        scope.spawn_named("indexer", async move {
            let _witness = witness;
            // A scope inside a task: a child of `indexer` in the tree.
            Scope::builder()
                .name("index")
                .run(async |index| {
                    let cleanup_book = book.clone();
                    index.defer(async move {
                        sleep(Duration::from_millis(150)).await;
                        cleanup_book.cleanup_ran("close shard files");
                    });
                    for shard in ["shard-0", "shard-1"] {
                        let witness = book.witness(shard);
                        index.spawn_named(shard, async move {
                            let _witness = witness;
                            loop {
                                sleep(Duration::from_millis(40)).await; // index a batch
                            }
                        });
                    }
                })
                .await
        });

        let witness = notebook.witness("flush");
        let (flushing, flushed) = (flushing.clone(), flushed.clone());
        scope.shield_named("flush", async move {
            // Shields are never cancelled from above, only asked to stop.
            let reason = tethered::stop_requested().await;
            flushing.notify_one();
            for _ in 0..3 {
                sleep(Duration::from_millis(100)).await; // write one pending batch
                *lock(&flushed) += 1;
            }
            witness.record(Ended::Stopped(reason));
        });
        // The body returns at once; the scope waits for its children.
    });

    // An observer outside the scope, as a debug endpoint would be: once the
    // shield starts flushing, everything is cancelling; look at the tree.
    let observer = async {
        flushing.notified().await;
        sleep(Duration::from_millis(30)).await;
        let tree = tethered::tree();
        on_tree(&tree);
        tree
    };

    let (result, tree_while_cancelling) = tokio::join!(ingest, observer);
    let error = match result {
        Ok(()) => unreachable!("`parser` always fails"),
        Err(error) => error,
    };

    let mut fates = lock(&notebook.fates).clone();
    fates.sort_by_key(|fate| TASKS.iter().position(|task| *task == fate.task));
    let cleanups = lock(&notebook.cleanups).clone();
    let flushed = *lock(&flushed);
    Report {
        tree_while_cancelling,
        fates,
        cleanups,
        flushed,
        error,
        elapsed: started.elapsed(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl fmt::Display for Report {
    /// The end of the demo's output: who ended each task and why, the
    /// cleanups, and the scope's error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== who ended each task, and why ==")?;
        for Fate { task, ended } in &self.fates {
            match ended {
                Ended::Failed(error) => writeln!(f, "{task:>8}: failed: {error}")?,
                Ended::Cancelled(reason) => writeln!(f, "{task:>8}: cancelled: {reason}")?,
                Ended::Stopped(reason) => writeln!(
                    f,
                    "{task:>8}: asked to stop (a shield is never cancelled from above), \
                     wrote its {} pending batches, then returned; stop reason: {reason}",
                    self.flushed,
                )?,
                Ended::Returned => writeln!(f, "{task:>8}: returned")?,
            }
        }
        writeln!(f)?;
        writeln!(f, "== cleanups, in the order they ran ==")?;
        for CleanupRun {
            cleanup,
            scope_reason,
        } in &self.cleanups
        {
            match scope_reason {
                Some(reason) => writeln!(f, "{cleanup}: scope was cancelled: {reason}")?,
                None => writeln!(f, "{cleanup}: scope ended normally")?,
            }
        }
        writeln!(f)?;
        writeln!(f, "== what `Scope::run` returned for `ingest` ==")?;
        writeln!(f, "Err({})", self.error)?;
        if let Some(parse) = self.error.downcast_ref::<ParseError>() {
            writeln!(
                f,
                "the failure downcasts to the task's own error: {parse:?}"
            )?;
        }
        writeln!(f)?;
        write!(f, "finished in {:?}", self.elapsed)
    }
}
