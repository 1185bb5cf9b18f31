//! The manager of a supervisor's static children: starts them, and when
//! one ends, applies its restart policy, the strategy, the backoff and the
//! intensity limit.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::Shared;
use super::child::{ChildExit, ChildHandle, Role, spawn_supervised};
use super::error::SupervisorErrorKind;
use super::spec::{ChildSpec, Restart, Strategy};
use super::stats::Counters;
use crate::budget::{self, Allowance, Allowed};
use crate::deadline;
use crate::error::TaskFailure;
use crate::metrics::ChildMetrics;
use crate::node::{Node, NodeKind};
use crate::reason::{CancelKind, CancelReason};

/// How many of a child's latest failures are kept for the intensity error.
const KEPT_FAILURES: usize = 5;

/// What reaches the manager.
pub(crate) enum Event {
    /// A start of a static child ended.
    Exited {
        index: usize,
        generation: u64,
        exit: ChildExit,
    },
    /// A child added with [`Supervisor::spawn_with`](crate::Supervisor::spawn_with).
    Adopt(ChildSpec<'static>),
}

/// The intensity limit was passed: the supervisor fails.
pub(crate) struct Exceeded {
    child: Cow<'static, str>,
    location: &'static std::panic::Location<'static>,
    restarts: u32,
    within: Duration,
    last_failures: Vec<TaskFailure>,
}

impl Exceeded {
    /// The reason the supervisor's children are shut down with.
    pub(crate) fn reason(&self, supervisor: &Node) -> CancelReason {
        CancelReason::raised_by(
            CancelKind::SiblingFailed,
            self.location,
            Some(self.child.clone()),
        )
        .with_message(format!(
            "supervisor `{}` gave up: `{}` needed more than {} restarts within {:?}",
            supervisor.name().unwrap_or("supervisor"),
            self.child,
            self.restarts,
            self.within
        ))
    }

    pub(crate) fn into_kind(self) -> SupervisorErrorKind {
        SupervisorErrorKind::RestartIntensity {
            child: self.child.into_owned(),
            location: self.location,
            max_restarts: self.restarts,
            within: self.within,
            last_failures: self.last_failures,
        }
    }
}

enum Run {
    Running(ChildHandle),
    /// Due to restart at this instant.
    Waiting(Instant),
    /// Ended for good (its policy says so, or the supervisor refused it).
    Ended,
}

struct Managed<'a> {
    spec: ChildSpec<'a>,
    /// What the current start gets to shut down in, on record for a
    /// supervisor nested in it (see [`budget`]).
    allowed: Option<Allowed>,
    /// Which start this is; exits of earlier starts are stale.
    generation: u64,
    run: Run,
    /// Restarts since the child last ran for at least its backoff's max.
    consecutive: u32,
    started: Instant,
    failures: VecDeque<TaskFailure>,
    /// Its metrics, for all its starts.
    metrics: ChildMetrics,
}

impl<'a> Managed<'a> {
    /// A child of `shared`'s not started yet.
    fn new(shared: &Shared, spec: ChildSpec<'a>) -> Self {
        Managed {
            metrics: shared.metrics.static_child(spec.name.clone()),
            spec,
            allowed: None,
            generation: 0,
            run: Run::Ended,
            consecutive: 0,
            started: Instant::now(),
            failures: VecDeque::new(),
        }
    }
}

pub(crate) struct Manager<'a> {
    shared: Arc<Shared>,
    strategy: Strategy,
    max_restarts: u32,
    within: Duration,
    seed: u64,
    /// When the restarts inside the current window happened.
    restarts: VecDeque<Instant>,
    children: Vec<Managed<'a>>,
    events: mpsc::UnboundedReceiver<Event>,
}

impl<'a> Manager<'a> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        strategy: Strategy,
        (max_restarts, within): (u32, Duration),
        seed: u64,
        specs: Vec<ChildSpec<'a>>,
        events: mpsc::UnboundedReceiver<Event>,
    ) -> Self {
        let children: Vec<Managed<'a>> = specs
            .into_iter()
            .map(|spec| Managed::new(&shared, spec))
            .collect();
        for child in &children {
            shared.add_static(&child.spec);
        }
        Manager {
            shared,
            strategy,
            max_restarts,
            within,
            seed,
            restarts: VecDeque::new(),
            children,
            events,
        }
    }

    /// Starts the children in declaration order, then supervises them.
    /// Returns only when the intensity limit is passed; dropped at shutdown.
    pub(crate) async fn run(&mut self) -> Exceeded {
        for index in 0..self.children.len() {
            self.start(index, false);
        }
        loop {
            let due = self
                .children
                .iter()
                .filter_map(|child| match child.run {
                    Run::Waiting(at) => Some(at),
                    _ => None,
                })
                .min();
            tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Some(Event::Exited { index, generation, exit }) => {
                        if let Err(exceeded) = self.exited(index, generation, exit).await {
                            return exceeded;
                        }
                    }
                    Some(Event::Adopt(spec)) => {
                        self.shared.add_static(&spec);
                        self.shared.check_budget();
                        self.children.push(Managed::new(&self.shared, spec));
                        self.start(self.children.len() - 1, false);
                    }
                    // The supervisor holds a sender as long as it runs.
                    None => std::future::pending().await,
                },
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.restart_due(Instant::now());
                }
            }
        }
    }

    fn start(&mut self, index: usize, restart: bool) {
        let child = &mut self.children[index];
        child.generation += 1;
        child.started = Instant::now();
        let future = (child.spec.factory)();
        let spawned = spawn_supervised(
            &self.shared,
            NodeKind::Task,
            Role::Static {
                index: u32::try_from(index)
                    .unwrap_or_else(|_| unreachable!("over 2^32 static children")),
                generation: child.generation,
            },
            child.metrics.clone(),
            child.spec.name.clone(),
            child.spec.location,
            future,
        );
        let shutdown = self.shared.state().statics[index].shutdown;
        let node = match spawned {
            Ok(handle) => {
                let node = handle.node().clone();
                child.run = Run::Running(handle);
                let cancel_timeout = self.shared.cancel_timeout;
                child.allowed = Some(budget::allow(
                    &node,
                    Allowance {
                        budget: shutdown
                            .budget()
                            .map(|budget| budget.saturating_add(cancel_timeout)),
                        giver: format!(
                            "child `{}` of supervisor `{}` (shutdown {} + cancel timeout {:?})",
                            child.spec.name,
                            self.shared.node.name().unwrap_or("supervisor"),
                            budget::show(shutdown.budget()),
                            cancel_timeout,
                        ),
                        from_main: false,
                    },
                ));
                Some(node)
            }
            // Shutting down: nothing restarts any more.
            Err(_) => {
                child.run = Run::Ended;
                None
            }
        };
        let started = node.is_some();
        if restart && node.is_some() {
            Counters::add(&self.shared.counters.starts.restarted);
            child.metrics.restarted();
            tracing::info!(
                target: "tethered::supervisor",
                supervisor = self.shared.node.name(),
                child = &*child.spec.name,
                generation = child.generation,
                "restarted supervised child",
            );
        }
        let mut state = self.shared.state();
        let account = &mut state.statics[index];
        account.node = node;
        account.next_start = None;
        if started {
            account.starts += 1;
        }
    }

    /// Sets a child's run, and what the report says of it while it waits.
    fn set_run(&mut self, index: usize, run: Run) {
        self.shared.state().statics[index].next_start = match run {
            Run::Waiting(at) => Some(at),
            Run::Running(_) | Run::Ended => None,
        };
        self.children[index].run = run;
    }

    /// Restarts every child whose backoff is over, in declaration order.
    fn restart_due(&mut self, now: Instant) {
        for index in 0..self.children.len() {
            if matches!(self.children[index].run, Run::Waiting(at) if at <= now) {
                self.start(index, true);
            }
        }
    }

    async fn exited(
        &mut self,
        index: usize,
        generation: u64,
        exit: ChildExit,
    ) -> Result<(), Exceeded> {
        let child = &mut self.children[index];
        if child.generation != generation || !matches!(child.run, Run::Running(_)) {
            // An earlier start, stopped by the strategy: already handled.
            return Ok(());
        }
        child.run = Run::Ended;
        {
            let mut state = self.shared.state();
            let account = &mut state.statics[index];
            account.node = None;
            account.next_start = None;
            if let ChildExit::Failed(failure) = &exit {
                account.last_failure = Some(failure.clone());
            }
        }
        if let ChildExit::Failed(failure) = &exit {
            if child.failures.len() == KEPT_FAILURES {
                child.failures.pop_front();
            }
            child.failures.push_back(failure.clone());
        }
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => exit.is_failure(),
            Restart::Temporary => false,
        };
        if !restart {
            tracing::debug!(
                target: "tethered::supervisor",
                supervisor = self.shared.node.name(),
                child = &*child.spec.name,
                exit = %exit,
                restart = ?child.spec.restart,
                "supervised child ended; its policy does not restart it",
            );
            return Ok(());
        }

        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= self.within)
        {
            self.restarts.pop_front();
        }
        let child = &mut self.children[index];
        if self.restarts.len() > self.max_restarts as usize {
            return Err(Exceeded {
                child: child.spec.name.clone(),
                location: child.spec.location,
                restarts: self.max_restarts,
                within: self.within,
                last_failures: child.failures.iter().cloned().collect(),
            });
        }
        if now.saturating_duration_since(child.started) >= child.spec.backoff.max() {
            child.consecutive = 0;
        }
        let seed = self.seed ^ (index as u64).rotate_left(32) ^ child.generation;
        let due = deadline::after(now, child.spec.backoff.delay(child.consecutive, seed));
        child.consecutive = child.consecutive.saturating_add(1);
        tracing::info!(
            target: "tethered::supervisor",
            supervisor = self.shared.node.name(),
            child = &*child.spec.name,
            exit = %exit,
            restart_in = ?due.saturating_duration_since(now),
            strategy = ?self.strategy,
            "supervised child ended; restarting",
        );
        self.set_run(index, Run::Waiting(due));

        let others = match self.strategy {
            Strategy::OneForOne => 0..0,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => index + 1..self.children.len(),
        };
        let reason = CancelReason::raised_by(
            CancelKind::SiblingFailed,
            self.children[index].spec.location,
            Some(self.children[index].spec.name.clone()),
        )
        // The siblings (and their cleanups) see why they are stopped.
        .with_message(format!(
            "restarting with `{}` ({:?}), which ended: {exit}",
            self.children[index].spec.name, self.strategy
        ));
        // Stopped last declared first, then restarted with the child that
        // ended, in declaration order, when its backoff is over.
        for other in others.rev().filter(|&other| other != index) {
            self.terminate(other, reason.clone()).await;
            let sibling = &self.children[other];
            let run = match (&sibling.run, sibling.spec.restart) {
                (Run::Ended, _) | (_, Restart::Temporary) => Run::Ended,
                _ => Run::Waiting(due),
            };
            self.set_run(other, run);
        }
        Ok(())
    }

    /// Stops a running child for a sibling's restart, within its own
    /// shutdown budget (see [`crate::ChildShutdown`]): asked to stop and given its
    /// budget (or cancelled at once, if brutal), then cancelled and waited
    /// for up to the cancel timeout.
    async fn terminate(&mut self, index: usize, reason: CancelReason) {
        let child = &mut self.children[index];
        if !matches!(child.run, Run::Running(_)) {
            return;
        }
        let Run::Running(handle) = std::mem::replace(&mut child.run, Run::Waiting(Instant::now()))
        else {
            unreachable!("checked above");
        };
        // Its exit event, when it comes, is ignored: the child is no longer
        // `Running` (and once restarted, it is a later generation). The
        // generation itself moves only when the child starts, so that it
        // counts starts.
        let shutdown = {
            let mut state = self.shared.state();
            state.statics[index].node = None;
            state.statics[index].shutdown
        };
        let cancel_timeout = self.shared.cancel_timeout;
        let name = child.spec.name.clone();
        let stopping = async {
            match shutdown.budget() {
                Some(budget) if budget.is_zero() => {
                    tokio::time::timeout(cancel_timeout, handle.cancel_and_wait(reason))
                        .await
                        .map(drop)
                }
                Some(budget) => {
                    let waited = budget.saturating_add(cancel_timeout);
                    tokio::time::timeout(waited, handle.stop_and_wait(reason, budget))
                        .await
                        .map(drop)
                }
                None => {
                    handle.stop(reason);
                    handle.join().await;
                    Ok(())
                }
            }
        };
        if stopping.await.is_err() {
            tracing::warn!(
                target: "tethered::supervisor",
                supervisor = self.shared.node.name(),
                child = &*name,
                ?shutdown,
                ?cancel_timeout,
                "supervised child still running after it was told to stop; restarting without it",
            );
        }
    }
}
