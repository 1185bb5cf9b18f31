//! [`ScopeReport`]: how each child task of a scope ended.
//!
//! A scope keeps an account of its children's ends as they happen: every
//! child that failed or was cancelled always, and, in a scope built with
//! [`ScopeBuilder::report`](crate::ScopeBuilder::report), every child that
//! completed too. A child that completes in a scope that keeps no report
//! costs nothing: it ends without taking its scope's lock, and the account
//! would need it.
//!
//! The account is bounded: the first [`KEPT_CHILDREN`] ends are kept in
//! detail, and the rest only counted, so that a long-lived scope's memory
//! does not grow with the children it has run.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::error::TaskFailure;
use crate::reason::CancelReason;

/// How many child ends a scope keeps in detail; the rest are counted.
pub const KEPT_CHILDREN: usize = 256;

/// How a child task of a scope ended, in a [`ScopeReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TaskEnd {
    /// Its future returned (an `Ok`, for a fallible task).
    Completed,
    /// It returned `Err` or panicked: its failure, as in the scope's error.
    Failed(TaskFailure),
    /// It was cancelled, for this reason (with its cause chain).
    Cancelled(CancelReason),
}

/// One child task in a [`ScopeReport`].
#[derive(Debug, Clone)]
pub struct ChildAccount {
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    shield: bool,
    /// When it was spawned, counted from the scope's start.
    started: Duration,
    ran_for: Duration,
    end: TaskEnd,
}

impl ChildAccount {
    pub(crate) fn new(
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        shield: bool,
        started: Duration,
        ran_for: Duration,
        end: TaskEnd,
    ) -> Self {
        ChildAccount {
            name,
            location,
            shield,
            started,
            ran_for,
            end,
        }
    }

    /// The task's name, if it had one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where it was spawned.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Whether it was a shield.
    pub fn is_shield(&self) -> bool {
        self.shield
    }

    /// How long it ran, from its spawn to its end.
    pub fn ran_for(&self) -> Duration {
        self.ran_for
    }

    /// How it ended.
    pub fn end(&self) -> &TaskEnd {
        &self.end
    }
}

impl fmt::Display for ChildAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.shield { "shield" } else { "task" })?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        write!(f, " (spawned at {}): ", self.location)?;
        let ran_for = millis(self.ran_for);
        match &self.end {
            TaskEnd::Completed => write!(f, "completed in {ran_for}"),
            TaskEnd::Failed(failure) => write!(f, "{}, after {ran_for}", failure.what()),
            TaskEnd::Cancelled(reason) => write!(f, "cancelled: {reason}, after {ran_for}"),
        }
    }
}

/// How a scope's children ended: each child task (and shield), named, with
/// where it was spawned, how long it ran and how it ended, in the order they
/// were spawned; reachable from [`ScopeError::report`](crate::ScopeError::report)
/// whenever a scope fails, and from
/// [`ScopeBuilder::run_reported`](crate::ScopeBuilder::run_reported)
/// however it ends.
///
/// Every child that failed or was cancelled is in it. Children that
/// completed are too when the scope was built with
/// [`ScopeBuilder::report`](crate::ScopeBuilder::report)
/// ([`lists_completed`](Self::lists_completed)); otherwise they are neither
/// listed nor counted (keeping them would cost every child a lock). The
/// first [`KEPT_CHILDREN`] ends are kept in detail, the others counted.
///
/// `Display` prints one line for the scope and one per child, indented:
///
/// ```text
/// scope `fan-out` (at src/main.rs:8:10) ended after 150ms: 3 completed, 1 failed, 1 cancelled
///   task `item-1` (spawned at src/main.rs:11:17): completed in 10ms
///   task `item-2` (spawned at src/main.rs:11:17): failed: item 2: refused, after 20ms
///   …
/// ```
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tethered::{Scope, TaskEnd};
///
/// let error = Scope::builder()
///     .name("fan-out")
///     .report()
///     .run(async |scope| {
///         for item in 1..=3u64 {
///             scope.spawn_fallible_named(format!("item-{item}"), async move {
///                 tokio::time::sleep(Duration::from_millis(10 * item)).await;
///                 if item == 2 { Err("refused") } else { Ok(item) }
///             });
///         }
///     })
///     .await
///     .unwrap_err();
/// let report = error.report().unwrap();
/// let ends: Vec<(&str, &str)> = report
///     .children()
///     .iter()
///     .map(|child| {
///         let end = match child.end() {
///             TaskEnd::Completed => "completed",
///             TaskEnd::Failed(_) => "failed",
///             TaskEnd::Cancelled(_) => "cancelled",
///             _ => "other",
///         };
///         (child.name().unwrap(), end)
///     })
///     .collect();
/// // In spawn order: item 2's failure cancelled item 3.
/// assert_eq!(ends, [("item-1", "completed"), ("item-2", "failed"), ("item-3", "cancelled")]);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ScopeReport {
    scope: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    took: Duration,
    lists_completed: bool,
    children: Vec<ChildAccount>,
    not_kept: Counts,
}

/// Ends counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    completed: u64,
    failed: u64,
    cancelled: u64,
}

impl Counts {
    fn add(&mut self, end: Ending) {
        match end {
            Ending::Completed => self.completed += 1,
            Ending::Failed => self.failed += 1,
            Ending::Cancelled => self.cancelled += 1,
        }
    }
}

/// Which way a child ended, without the details.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending {
    Completed,
    Failed,
    Cancelled,
}

/// What a scope keeps of its children's ends while it runs.
#[derive(Debug, Default)]
pub(crate) struct Account {
    kept: Vec<ChildAccount>,
    not_kept: Counts,
}

impl Account {
    /// Records a child that ended as `end`; `account` makes its line, only
    /// while there is room to keep it (past that, ends are only counted: a
    /// cancellation of many children pays for the first lines only, and
    /// shares no reason's reference count among its workers).
    pub(crate) fn record(&mut self, end: Ending, account: impl FnOnce() -> ChildAccount) {
        if self.kept.len() < KEPT_CHILDREN {
            self.kept.push(account());
        } else {
            self.not_kept.add(end);
        }
    }

    /// The report, for the scope named `scope`, located at `location`,
    /// which ran for `took`.
    pub(crate) fn into_report(
        self,
        scope: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        took: Duration,
        lists_completed: bool,
    ) -> ScopeReport {
        let mut children = self.kept;
        // In spawn order (stable: children spawned at the same instant stay
        // in the order they ended).
        children.sort_by_key(|child| child.started);
        ScopeReport {
            scope,
            location,
            took,
            lists_completed,
            children,
            not_kept: self.not_kept,
        }
    }
}

impl ScopeReport {
    /// The scope's name, if it had one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Where the scope was created.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long the scope ran.
    pub fn took(&self) -> Duration {
        self.took
    }

    /// Whether children that completed are in the report (the scope was
    /// built with [`ScopeBuilder::report`](crate::ScopeBuilder::report)),
    /// or only the ones that failed or were cancelled.
    pub fn lists_completed(&self) -> bool {
        self.lists_completed
    }

    /// The children kept in detail, in the order they were spawned.
    pub fn children(&self) -> &[ChildAccount] {
        &self.children
    }

    /// The first child with this name.
    pub fn child(&self, name: &str) -> Option<&ChildAccount> {
        self.children
            .iter()
            .find(|child| child.name() == Some(name))
    }

    /// How many children completed (counting those not kept in detail);
    /// 0 unless [`lists_completed`](Self::lists_completed).
    pub fn completed(&self) -> u64 {
        self.count(|end| matches!(end, TaskEnd::Completed)) + self.not_kept.completed
    }

    /// How many children failed (returned `Err` or panicked).
    pub fn failed(&self) -> u64 {
        self.count(|end| matches!(end, TaskEnd::Failed(_))) + self.not_kept.failed
    }

    /// How many children were cancelled.
    pub fn cancelled(&self) -> u64 {
        self.count(|end| matches!(end, TaskEnd::Cancelled(_))) + self.not_kept.cancelled
    }

    /// How many ends were counted but not kept in detail (past the first
    /// [`KEPT_CHILDREN`]).
    pub fn not_kept(&self) -> u64 {
        self.not_kept.completed + self.not_kept.failed + self.not_kept.cancelled
    }

    /// The failures of the children that failed, taken out of the report
    /// (see `ScopeError`'s `Drop`).
    pub(crate) fn into_failures(self) -> impl Iterator<Item = TaskFailure> {
        self.children
            .into_iter()
            .filter_map(|child| match child.end {
                TaskEnd::Failed(failure) => Some(failure),
                _ => None,
            })
    }

    fn count(&self, which: impl Fn(&TaskEnd) -> bool) -> u64 {
        self.children
            .iter()
            .filter(|child| which(&child.end))
            .count() as u64
    }
}

impl fmt::Display for ScopeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(name) => write!(f, "scope `{name}` (at {})", self.location)?,
            None => write!(f, "scope at {}", self.location)?,
        }
        write!(f, " ended after {}: ", millis(self.took))?;
        if self.lists_completed {
            write!(f, "{} completed, ", self.completed())?;
        }
        write!(
            f,
            "{} failed, {} cancelled",
            self.failed(),
            self.cancelled()
        )?;
        if !self.lists_completed {
            f.write_str(" (children that completed are listed when the scope keeps a report)")?;
        }
        for child in &self.children {
            write!(f, "\n  {child}")?;
        }
        let not_kept = self.not_kept;
        if not_kept != Counts::default() {
            write!(
                f,
                "\n  … and {} more, not kept in detail: {} completed, {} failed, {} cancelled",
                self.not_kept(),
                not_kept.completed,
                not_kept.failed,
                not_kept.cancelled
            )?;
        }
        Ok(())
    }
}

/// Milliseconds: nanoseconds are noise in a report.
fn millis(duration: Duration) -> String {
    let millis = Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX));
    format!("{millis:?}")
}
