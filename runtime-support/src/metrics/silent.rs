//! The metrics without the `metrics` feature: nothing, at no cost.

use std::borrow::Cow;
use std::panic::Location;
use std::time::Duration;

use tokio::time::Instant;

use super::RunEnd;
use crate::{ChildExit, ScopeErrorKind};

pub(crate) struct SupervisorMetrics;

impl SupervisorMetrics {
    pub(crate) fn new(_: Option<&Cow<'static, str>>, _: &'static Location<'static>) -> Self {
        SupervisorMetrics
    }

    pub(crate) fn dynamic(&self) -> ChildMetrics {
        ChildMetrics
    }

    pub(crate) fn shield(&self) -> ChildMetrics {
        ChildMetrics
    }

    pub(crate) fn static_child(&self, _: Cow<'static, str>) -> ChildMetrics {
        ChildMetrics
    }

    pub(crate) fn shut_down(&self, _: Duration, _: usize) {}
}

#[derive(Clone)]
pub(crate) struct ChildMetrics;

impl ChildMetrics {
    pub(crate) fn started(&self) {}

    pub(crate) fn restarted(&self) {}

    pub(crate) fn ended(&self, _: &ChildExit) {}
}

pub(crate) struct PeriodicMetrics;

impl PeriodicMetrics {
    pub(crate) fn new(_: Option<&Cow<'static, str>>, _: &'static Location<'static>) -> Self {
        PeriodicMetrics
    }

    pub(crate) fn ticked(&self, _: u64, _: bool) {}

    pub(crate) fn skipped(&self) {}

    pub(crate) fn run_started(&self, _: Instant, _: Instant) -> RunTimer {
        RunTimer
    }

    pub(crate) fn run_ended(&self, _: &RunTimer, _: RunEnd) {}
}

pub(crate) struct RunTimer;

pub(crate) fn scope_ended(
    _: Option<&Cow<'static, str>>,
    _: &'static Location<'static>,
    _: ScopeErrorKind,
) {
}

pub(super) fn describe() {}
