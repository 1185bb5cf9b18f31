//! A supervisor's shutdown, in phases, and the [`ShutdownReport`] it ends
//! with.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::future::poll_fn;
use std::panic::Location;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::Shared;
use super::child::{ChildExit, Role};
use super::spec::ChildShutdown;
use super::stats::SupervisorStats;
use crate::deadline;
use crate::error::TaskFailure;
use crate::node::sync::Arc as NodeArc;
use crate::node::{FinishOnDrop, Node, NodeKind};
use crate::reason::{CancelKind, CancelReason};
use crate::tree::EntryState;
use crate::wait::WaitSite;

/// Why a child still running when its time is up is cancelled: the
/// deadline (`why`), raised by the supervisor, caused by the shutdown's own
/// reason.
fn time_up(node: &Node, shutdown: &CancelReason, why: String) -> CancelReason {
    CancelReason::raised_by(CancelKind::Timeout, node.location(), node.name_cow())
        .with_message(format!("still running when {why}"))
        .caused_by(shutdown.clone())
}

/// The shutdown task: the body, the dynamic children and the shields are
/// asked to stop and given the grace, then cancelled (shields are only ever
/// asked); then the static children, last declared first, each within its
/// own budget; then the report. Cancelled children are waited for out of
/// one `cancel_timeout`, shared by the whole shutdown. The task then stays
/// until the stragglers are gone, so that the supervisor leaves the tree,
/// and its parent's registry, only after its last child.
pub(crate) async fn run(shared: Arc<Shared>, reason: CancelReason) {
    let node = shared.node.clone();
    // Finishes the node even if the runtime drops this task at shutdown.
    let finish = FinishOnDrop(node.clone());
    let began = Instant::now();
    let snapshot = node.children();
    let statics: Vec<(NodeArc<Node>, ChildShutdown)> = shared
        .state()
        .statics
        .iter()
        .filter_map(|child| Some((child.node.clone()?, child.shutdown)))
        .collect();
    // Which static child each running node is, for the report.
    let static_ids: Vec<(usize, usize)> = shared
        .state()
        .statics
        .iter()
        .enumerate()
        .filter_map(|(index, child)| Some((child.node.as_ref()?.id(), index)))
        .collect();
    let is_static = |child: &Node| statics.iter().any(|(s, _)| s.id() == child.id());
    // Shields are never cancelled: the static children are not kept
    // waiting for them. (The supervisor takes no new children now.)
    let shields: Vec<NodeArc<Node>> = snapshot
        .iter()
        .filter(|child| child.kind() == NodeKind::Shield)
        .cloned()
        .collect();
    // The body and the children that await this shutdown's report are not
    // waited for: they are waiting for us.
    let waits_for_us = |id: usize| shared.state().awaiting.contains(&id);
    let body_settled = || shared.state().body_done || waits_for_us(node.id());
    let mut cancel_wait = CancelWait::new(shared.cancel_timeout);

    // 1. Stop the body, the dynamic children and the shields first (they
    // use the static children), and give them the grace.
    let grace_over = deadline::after(began, shared.grace);
    node.stop(reason.clone());
    for child in snapshot.iter().filter(|child| !is_static(child)) {
        child.stop(reason.clone());
    }
    // Counted rather than listed: this is checked every time a child ends,
    // and there may be many.
    let statics_alive = || statics.iter().filter(|(child, _)| !child.is_done()).count();
    let exempt = |shields_too: bool| {
        let shields_alive = if shields_too {
            shields.iter().filter(|child| !child.is_done()).count()
        } else {
            0
        };
        let state = shared.state();
        let others_awaiting = state
            .awaiting
            .iter()
            .filter(|&&id| id != node.id() && !statics.iter().any(|(s, _)| s.id() == id))
            .count();
        statics_alive() + shields_alive + others_awaiting
    };
    wait_until(&node, grace_over, || {
        body_settled() && node.child_count() <= exempt(false)
    })
    .await;

    // 2. Cancel those still running, the ones awaiting the report among
    // them (they would wait for us for ever), and the body too, unless it
    // awaits the report; wait for them before stopping what they may use.
    if !body_settled() || node.child_count() > statics_alive() {
        // Why: the grace ran out (unless only children awaiting the report
        // are left, which are cancelled before it does).
        let cancel = if Instant::now() >= grace_over {
            time_up(
                &node,
                &reason,
                format!("the shutdown's grace of {:?} ran out", shared.grace),
            )
        } else {
            reason.clone()
        };
        for child in node.children() {
            if is_static(&child) {
                continue;
            }
            match child.kind() {
                NodeKind::Task | NodeKind::Scope => child.cancel(cancel.clone(), true),
                NodeKind::Shield | NodeKind::Cleanup | NodeKind::Supervisor => {
                    child.stop(reason.clone())
                }
            };
        }
        if !body_settled() {
            // The body alone: the static children are next, one at a time.
            node.cancel_alone(cancel);
        }
        cancel_wait
            .wait(&node, || {
                body_settled() && node.child_count() <= exempt(true)
            })
            .await;
    }

    // 3. The static children, last declared first, each within its own
    // budget (OTP's `shutdown`): one that ignores the stop uses up its own
    // time, not its siblings'. One that awaits the report is cancelled
    // when its turn comes, as it will not stop by itself.
    for (child, shutdown) in statics.iter().rev() {
        let ended_or_awaits = || child.is_done() || waits_for_us(child.id());
        // No budget: as long as it takes, a deadline that is never due.
        let budget = shutdown.budget().unwrap_or(Duration::MAX);
        let mut ran_out = false;
        if !ended_or_awaits() && !budget.is_zero() {
            child.stop(reason.clone());
            let due = deadline::after(Instant::now(), budget);
            wait_until(&node, due, ended_or_awaits).await;
            ran_out = !ended_or_awaits();
        }
        if !child.is_done() {
            let cancel = if ran_out {
                time_up(
                    &node,
                    &reason,
                    format!("its shutdown budget of {budget:?} ran out"),
                )
            } else {
                reason.clone()
            };
            child.cancel(cancel, true);
            cancel_wait.wait(&node, || child.is_done()).await;
        }
    }

    // 4. What is left (shields, children still finishing their
    // cancellation) gets the rest of the cancel timeout.
    cancel_wait
        .wait(&node, || body_settled() && node.child_count() == 0)
        .await;

    // 5. Report.
    let report = ShutdownReport::new(&shared, reason, began, &snapshot, &static_ids);
    let stragglers = report.stragglers().count();
    if stragglers == 0 {
        // Out of the tree before anyone reads the report.
        node.finish();
    } else {
        tracing::warn!(
            target: "tethered::supervisor",
            supervisor = node.name(),
            stragglers,
            report = %report,
            "supervisor shut down with children still running",
        );
    }
    // Set once: this task is the only one that sets it.
    let _ = shared.report.set(report);
    wait_until(&node, deadline::never(Instant::now()), || {
        node.child_count() == 0
    })
    .await;
    drop(finish);
}

/// The cancel timeout, spent as the shutdown waits for cancelled children:
/// one budget for the whole shutdown, however many children it cancels.
struct CancelWait {
    left: Duration,
}

impl CancelWait {
    fn new(cancel_timeout: Duration) -> Self {
        CancelWait {
            left: cancel_timeout,
        }
    }

    /// Waits until `done()`, out of what is left of the cancel timeout.
    async fn wait(&mut self, node: &Node, done: impl FnMut() -> bool) {
        let started = Instant::now();
        wait_until(node, deadline::after(started, self.left), done).await;
        self.left = self.left.saturating_sub(started.elapsed());
    }
}

/// Waits until `done()` or `deadline`, re-checking whenever a child of
/// `node` ends or the supervisor's body does.
async fn wait_until(node: &Node, deadline: Instant, mut done: impl FnMut() -> bool) {
    let mut timer = pin!(sleep_until(deadline));
    poll_fn(|cx| {
        // Registered before checking, so that no ending falls in between.
        node.poll_watch_children(cx.waker());
        if done() || timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Where `node`'s code waits, or, failing that, the code of the first of its
/// descendants that records it (a task whose body is a plain `async` block
/// calling a `#[scoped]` fn waits in that fn's scope).
fn waiting_at(node: &NodeArc<Node>) -> Option<&'static WaitSite> {
    let mut walk = vec![node.clone()];
    while let Some(node) = walk.pop() {
        if let Some(site) = node.waiting_at() {
            return Some(site);
        }
        walk.extend(node.children().into_iter().rev());
    }
    None
}

/// How a child ended while its supervisor shut down, recorded by the child.
pub(crate) struct Ended {
    id: usize,
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    role: Role,
    exit: ChildExit,
    at: Instant,
}

impl Ended {
    pub(crate) fn new(node: &Node, role: Role, exit: ChildExit) -> Self {
        Ended {
            id: node.id(),
            name: node.name_cow(),
            location: node.location(),
            role,
            exit,
            at: Instant::now(),
        }
    }
}

/// What a child was to its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildRole {
    /// A restartable child ([`ChildSpec`](crate::ChildSpec)).
    Static,
    /// A child started with [`Supervisor::spawn`](crate::Supervisor::spawn).
    Dynamic,
    /// A child started with [`Supervisor::shield`](crate::Supervisor::shield).
    Shield,
    /// A scope the supervisor's body was running.
    Scope,
}

impl ChildRole {
    fn describe(self) -> &'static str {
        match self {
            ChildRole::Static => "static",
            ChildRole::Dynamic => "dynamic",
            ChildRole::Shield => "shield",
            ChildRole::Scope => "scope",
        }
    }
}

/// How a child came out of its supervisor's shutdown.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ChildEnd {
    /// It ended, `after` the shutdown began.
    Exited {
        /// How it ended.
        exit: ChildExit,
        /// When, counted from the start of the shutdown.
        after: Duration,
    },
    /// It was still running when the shutdown gave up waiting.
    Straggler {
        /// What it was doing.
        state: EntryState,
        /// The `.await` it (or, failing that, the first of its descendants
        /// that has one) was last polled at: where it is stuck, for code
        /// that tethered's macros expanded (see
        /// [`TreeEntry::waiting_at`](crate::TreeEntry::waiting_at)).
        waiting_at: Option<&'static WaitSite>,
        /// How long it had been running.
        running_for: Duration,
    },
    /// A static child that was not running when the shutdown began, and
    /// was not started again.
    NotRunning {
        /// When its next start was due, counted from the start of the
        /// shutdown, if it was waiting out its backoff; `None` if its
        /// policy did not restart it.
        next_start: Option<Duration>,
    },
}

/// One child in a [`ShutdownReport`].
#[derive(Debug, Clone)]
pub struct ChildReport {
    name: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    role: ChildRole,
    end: ChildEnd,
    /// A static child's account.
    starts: Option<u64>,
    last_failure: Option<TaskFailure>,
}

impl ChildReport {
    /// The child's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where the child was spawned (for a static child, where its
    /// [`ChildSpec`](crate::ChildSpec) was made).
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// What the child was to the supervisor.
    pub fn role(&self) -> ChildRole {
        self.role
    }

    /// How it came out of the shutdown.
    pub fn end(&self) -> &ChildEnd {
        &self.end
    }

    /// How it ended, if it ended during the shutdown.
    pub fn exit(&self) -> Option<&ChildExit> {
        match &self.end {
            ChildEnd::Exited { exit, .. } => Some(exit),
            ChildEnd::Straggler { .. } | ChildEnd::NotRunning { .. } => None,
        }
    }

    /// For a static child, how many times it was started over the
    /// supervisor's life (its restarts are one fewer).
    pub fn starts(&self) -> Option<u64> {
        self.starts
    }

    /// For a static child, how its latest failed start failed.
    pub fn last_failure(&self) -> Option<&TaskFailure> {
        self.last_failure.as_ref()
    }

    /// Whether it was still running when the shutdown gave up on it.
    pub fn is_straggler(&self) -> bool {
        matches!(self.end, ChildEnd::Straggler { .. })
    }
}

impl fmt::Display for ChildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.role.describe())?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        write!(f, " (spawned at {}): ", self.location)?;
        match &self.end {
            ChildEnd::Exited { exit, after } => {
                let after = millis(*after);
                match exit {
                    ChildExit::Completed => write!(f, "stopped cleanly, after {after}")?,
                    ChildExit::Cancelled(reason) => {
                        write!(f, "cancelled: {reason}, after {after}")?
                    }
                    ChildExit::Failed(failure) => write!(f, "{}, after {after}", failure.what())?,
                }
            }
            ChildEnd::Straggler {
                state,
                waiting_at,
                running_for,
            } => {
                write!(f, "straggler: STILL RUNNING ({state})")?;
                if let Some(site) = waiting_at {
                    write!(f, ", waiting at {site}")?;
                }
                write!(f, ", for {}", millis(*running_for))?;
            }
            ChildEnd::NotRunning {
                next_start: Some(due),
            } => write!(
                f,
                "in backoff, its next start due in {}; not restarted: shutting down",
                millis(*due)
            )?,
            ChildEnd::NotRunning { next_start: None } => {
                f.write_str("not running: its policy did not restart it")?
            }
        }
        match self.starts {
            None => Ok(()),
            Some(1) => f.write_str("; started once"),
            Some(starts) => write!(f, "; started {starts} times"),
        }?;
        match &self.last_failure {
            Some(failure) => write!(f, ", last failure: {}", failure.what()),
            None => Ok(()),
        }
    }
}

/// How a supervisor's shutdown went: the reason, how long it took, and how
/// each child that was alive when it began came out of it. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tethered::{ChildExit, Supervisor};
///
/// let supervised = Supervisor::builder()
///     .grace(Duration::from_secs(1))
///     .run(async |sv| {
///         sv.spawn("polite", async { tethered::stop_requested().await; }).unwrap();
///         sv.spawn("deaf", std::future::pending::<()>()).unwrap();
///     })
///     .await
///     .unwrap();
/// let report = supervised.report;
/// assert_eq!(report.took(), Duration::from_secs(1));
/// let polite = report.child("polite").unwrap().exit().unwrap();
/// assert!(matches!(polite, ChildExit::Completed));
/// let deaf = report.child("deaf").unwrap().exit().unwrap();
/// assert!(matches!(deaf, ChildExit::Cancelled(_)));
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownReport(Arc<Report>);

struct Report {
    supervisor: Option<String>,
    stats: SupervisorStats,
    reason: CancelReason,
    took: Duration,
    children: Vec<ChildReport>,
    failures: Vec<TaskFailure>,
}

impl ShutdownReport {
    fn new(
        shared: &Shared,
        reason: CancelReason,
        began: Instant,
        snapshot: &[NodeArc<Node>],
        static_ids: &[(usize, usize)],
    ) -> Self {
        let now = Instant::now();
        let (ended, accounts) = {
            let mut state = shared.state();
            let ended = state.ended.take().unwrap_or_default();
            let accounts: Vec<(Option<u64>, Option<TaskFailure>, Option<Instant>)> = state
                .statics
                .iter()
                .map(|child| {
                    (
                        Some(child.starts),
                        child.last_failure.clone(),
                        child.next_start,
                    )
                })
                .collect();
            (ended, accounts)
        };
        let static_index = |id: usize| {
            static_ids
                .iter()
                .find(|(node, _)| *node == id)
                .map(|&(_, index)| index)
        };
        let account = |index: Option<usize>| match index.and_then(|index| accounts.get(index)) {
            Some((starts, failure, _)) => (*starts, failure.clone()),
            None => (None, None),
        };
        let role_of = |node: &Node| match node.kind() {
            _ if static_index(node.id()).is_some() => ChildRole::Static,
            NodeKind::Shield => ChildRole::Shield,
            NodeKind::Scope | NodeKind::Supervisor => ChildRole::Scope,
            NodeKind::Task | NodeKind::Cleanup => ChildRole::Dynamic,
        };
        let mut children = Vec::new();
        // Still running: the stragglers.
        let mut seen = HashSet::new();
        for node in shared.node.children() {
            seen.insert(node.id());
            let (starts, last_failure) = account(static_index(node.id()));
            children.push(ChildReport {
                name: node.name_cow(),
                location: node.location(),
                role: role_of(&node),
                end: ChildEnd::Straggler {
                    state: EntryState::of(&node),
                    waiting_at: waiting_at(&node),
                    running_for: now.saturating_duration_since(node.started()),
                },
                starts,
                last_failure,
            });
        }
        // Static children that were not running: in backoff, or ended for
        // good. They come first: nothing happened to them in the shutdown.
        let mut recorded: Vec<ChildReport> = Vec::with_capacity(ended.len());
        let mut statics = shared.state();
        for (index, child) in statics.statics.iter_mut().enumerate() {
            if static_ids.iter().any(|&(_, running)| running == index) {
                continue;
            }
            recorded.push(ChildReport {
                name: Some(child.name.clone()),
                location: child.location,
                role: ChildRole::Static,
                end: ChildEnd::NotRunning {
                    next_start: child
                        .next_start
                        .map(|at| at.saturating_duration_since(began)),
                },
                starts: Some(child.starts),
                last_failure: child.last_failure.clone(),
            });
        }
        drop(statics);
        let not_running = recorded.len();
        // The recorded ends, in the order they happened; the last record of
        // a child is its own end.
        for ended in ended.into_iter().rev() {
            if !seen.insert(ended.id) {
                continue;
            }
            let (role, index) = match ended.role {
                Role::Static { index, .. } => (ChildRole::Static, Some(index as usize)),
                Role::Dynamic => (ChildRole::Dynamic, None),
                Role::Shield => (ChildRole::Shield, None),
            };
            let (starts, last_failure) = account(index);
            recorded.push(ChildReport {
                name: ended.name,
                location: ended.location,
                role,
                end: ChildEnd::Exited {
                    exit: ended.exit,
                    after: ended.at.saturating_duration_since(began),
                },
                starts,
                last_failure,
            });
        }
        recorded[not_running..].reverse();
        // Alive when the shutdown began, ended without a record of their
        // own: scopes the body was running.
        for node in snapshot {
            if seen.contains(&node.id()) || !node.is_done() {
                continue;
            }
            let exit = match node.reason() {
                Some(reason) => ChildExit::Cancelled(reason),
                None => ChildExit::Completed,
            };
            recorded.push(ChildReport {
                name: node.name_cow(),
                location: node.location(),
                role: role_of(node),
                end: ChildEnd::Exited {
                    exit,
                    after: now.saturating_duration_since(began),
                },
                starts: None,
                last_failure: None,
            });
        }
        recorded.append(&mut children);
        let mut children = recorded;
        children.sort_by_key(|child| match child.end {
            ChildEnd::NotRunning { .. } => (0, Duration::ZERO),
            ChildEnd::Exited { after, .. } => (1, after),
            ChildEnd::Straggler { .. } => (2, Duration::ZERO),
        });
        let took = now.saturating_duration_since(began);
        let stragglers = children
            .iter()
            .filter(|child| matches!(child.end, ChildEnd::Straggler { .. }))
            .count();
        shared.metrics.shut_down(took, stragglers);
        ShutdownReport(Arc::new(Report {
            supervisor: shared.node.name().map(str::to_owned),
            stats: shared.counters.snapshot(),
            reason,
            took,
            children,
            failures: shared.node.take_failures(),
        }))
    }

    /// The supervisor's name.
    pub fn supervisor(&self) -> Option<&str> {
        self.0.supervisor.as_deref()
    }

    /// The supervisor's counts when the report was made: everything it
    /// ran, over its whole life.
    pub fn stats(&self) -> SupervisorStats {
        self.0.stats
    }

    /// Why the supervisor shut down.
    pub fn reason(&self) -> &CancelReason {
        &self.0.reason
    }

    /// How long the shutdown took, from the stop request to the report.
    pub fn took(&self) -> Duration {
        self.0.took
    }

    /// Every child alive when the shutdown began, in the order they ended,
    /// the stragglers last; and before them, every static child that was
    /// not running (waiting out its backoff, or ended for good).
    pub fn children(&self) -> &[ChildReport] {
        &self.0.children
    }

    /// The first child with this name.
    pub fn child(&self, name: &str) -> Option<&ChildReport> {
        self.0
            .children
            .iter()
            .find(|child| child.name() == Some(name))
    }

    /// The children still running when the shutdown gave up waiting.
    pub fn stragglers(&self) -> impl Iterator<Item = &ChildReport> {
        self.0.children.iter().filter(|child| child.is_straggler())
    }

    /// Failures recorded on the supervisor itself rather than by a child:
    /// a scope dropped inside a child that failed while finishing, a future
    /// that panicked while being dropped.
    pub fn failures(&self) -> &[TaskFailure] {
        &self.0.failures
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stragglers = self.stragglers().count();
        write!(
            f,
            "supervisor `{}` shut down in {} ({}); {} children, {} still running",
            self.supervisor().unwrap_or("supervisor"),
            millis(self.took()),
            self.reason(),
            self.children().len(),
            stragglers,
        )?;
        for child in self.children() {
            write!(f, "\n  {child}")?;
        }
        for failure in self.failures() {
            write!(f, "\n  failure: {failure}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownReport")
            .field("supervisor", &self.0.supervisor)
            .field("stats", &self.0.stats)
            .field("reason", &self.0.reason)
            .field("took", &self.0.took)
            .field("children", &self.0.children)
            .field("failures", &self.0.failures)
            .finish()
    }
}

/// A duration at millisecond precision, for reports.
fn millis(duration: Duration) -> String {
    format!(
        "{:?}",
        Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX))
    )
}
