//! [`task_dump`]: tokio's task dumps (where each task is suspended, as a
//! call stack of `async fn`s) placed in the task tree, under the task each
//! trace belongs to. With the `taskdump` feature, under
//! `--cfg tokio_unstable`, on the platforms tokio dumps tasks on.

#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "s390x"
    )
)))]
compile_error!(
    "tethered's `taskdump` feature needs tokio's task dumps, which exist on Linux on aarch64, \
     x86, x86_64 and s390x only: turn the feature off on this target"
);

use std::collections::HashMap;
use std::fmt;

use crate::tree::{TaskTree, TreeEntry, depth_first};

/// The task tree, with each task's trace from tokio's task dump: the whole
/// chain of `.await`s a task is suspended on, down into the libraries it
/// calls, where [`TreeEntry::waiting_at`] has the innermost one in code
/// tethered's macros expanded.
///
/// Its `Display` is the tree's, each task followed by its trace; tokio
/// tasks that are not in the tree (spawned with `tokio::spawn`) come last.
pub struct TaskDump {
    tree: TaskTree,
    traces: HashMap<tokio::task::Id, String>,
}

/// Dumps every task of the current runtime, and places each in the tree.
///
/// Await it on the runtime to dump (tokio requires it for the
/// current-thread runtime), and give it a timeout: tokio's dump waits for
/// every worker thread, and one blocked for good keeps it waiting (see
/// `tokio::runtime::Handle::dump`). `#[tethered::main]` does both on
/// SIGUSR1, with a timeout of 2 s.
///
/// # Panics
///
/// Outside a tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::future::pending;
/// use tethered::Scope;
///
/// async fn wait_for_the_database() {
///     pending::<()>().await
/// }
///
/// Scope::run(async |scope| {
///     let query = scope.spawn_named("query", wait_for_the_database());
///     tokio::task::yield_now().await;
///     let dump = tethered::task_dump().await;
///     // task `query` at src/main.rs:12:23 [running, age 0ns]
///     //   ╼ wait_for_the_database::{{closure}} at src/main.rs:7:24
///     //   …
///     println!("{dump}");
///     query.cancel("done");
/// })
/// .await
/// .unwrap();
/// # }
/// ```
pub async fn task_dump() -> TaskDump {
    let dump = tokio::runtime::Handle::current().dump().await;
    // The task asking is busy dumping: its trace would say only that.
    let asking = tokio::task::try_id();
    let traces = dump
        .tasks()
        .iter()
        .filter(|task| Some(task.id()) != asking)
        .map(|task| (task.id(), without_plumbing(&task.trace().to_string())))
        .collect();
    TaskDump {
        tree: crate::tree(),
        traces,
    }
}

impl TaskDump {
    /// The tree, as it was when the dump was taken.
    pub fn tree(&self) -> &TaskTree {
        &self.tree
    }

    /// The trace of `entry`'s task, if it is a task and tokio dumped it.
    pub fn trace(&self, entry: &TreeEntry) -> Option<&str> {
        self.traces.get(&entry.tokio_task_id()?).map(String::as_str)
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut placed = Vec::new();
        for (depth, entry) in depth_first(self.tree.roots()) {
            entry.fmt_line(f, depth)?;
            if let Some(id) = entry.tokio_task_id()
                && let Some(trace) = self.traces.get(&id)
            {
                write_trace(f, trace, depth + 1)?;
                placed.push(id);
            }
        }
        let mut others: Vec<_> = self
            .traces
            .iter()
            .filter(|(id, _)| !placed.contains(id))
            .collect();
        if !others.is_empty() {
            others.sort_by_key(|(id, _)| **id);
            writeln!(f, "tokio tasks outside the tree:")?;
            for (id, trace) in others {
                writeln!(f, "  tokio task {id}")?;
                write_trace(f, trace, 2)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDump")
            .field("tree", &self.tree)
            .field("traces", &self.traces.len())
            .finish()
    }
}

/// `trace`'s lines, indented under the entry they belong to.
fn write_trace(f: &mut fmt::Formatter<'_>, trace: &str, depth: usize) -> fmt::Result {
    let indent = depth.min(crate::tree::MAX_INDENT) * 2;
    for line in trace.lines().filter(|line| !line.trim().is_empty()) {
        writeln!(f, "{:indent$}{line}", "")?;
    }
    Ok(())
}

/// A trace without its first frames while they are tethered's own task
/// wrapper and the unwinding machinery under it (a dozen frames, the same
/// in every task): it starts at the user's future. Frames of tethered's
/// further in (a `stop_requested().await`, a nested scope) stay.
fn without_plumbing(trace: &str) -> String {
    let lines: Vec<&str> = trace
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    // Nothing but plumbing: the task's future is not an `async fn` or
    // block, which is all a task dump can see into.
    let Some(first) = lines.iter().position(|line| !is_plumbing(line)) else {
        return String::new();
    };
    // The frames kept are re-indented as if the first were the root (tokio
    // indents with no-break spaces, which count as whitespace here).
    let blanks = |line: &str| line.chars().take_while(|c| c.is_whitespace()).count();
    let indent = blanks(lines[first]);
    let mut kept = String::new();
    for (n, line) in lines[first..].iter().enumerate() {
        let line: String = line.chars().skip(blanks(line).min(indent)).collect();
        let line = match n {
            0 => line.trim_start_matches(['└', '├']),
            _ => &line,
        };
        // Plain spaces: a dump is read in terminals and searched with grep.
        kept.push_str(&line.replace('\u{a0}', " "));
        kept.push('\n');
    }
    kept
}

/// Whether a trace's line is a frame of tethered's task wrapper, or of the
/// standard library's unwinding and closures it calls through.
fn is_plumbing(line: &str) -> bool {
    let frame = line.trim_start_matches(|c: char| c.is_whitespace() || "└├│╼".contains(c));
    [
        "tethered::",
        "<tethered::",
        "std::",
        "<std::",
        "core::",
        "<core::",
        "__rust_try",
    ]
    .iter()
    .any(|prefix| frame.starts_with(prefix))
}
