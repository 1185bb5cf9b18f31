//! Helpers shared by the behaviour tests: probes that record how a future
//! ended, an event log with paused-clock timestamps, and a panic hook that
//! keeps the output free of the panics the tests cause on purpose.
#![allow(dead_code, unreachable_pub)]

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use tethered::CancelReason;
use tokio::time::Instant;

/// Every panic the tests cause on purpose starts with this text.
pub const EXPECTED: &str = "expected panic";

/// Silences panics whose message starts with [`EXPECTED`] (and panics with
/// an [`ExpectedPayload`]); every other panic is printed as usual.
pub fn quiet_expected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_expected(info.payload()) {
                default(info);
            }
        }));
    });
}

/// A non-string panic payload, for tests of payload downcasting.
#[derive(Debug, PartialEq, Eq)]
pub struct ExpectedPayload(pub u32);

fn is_expected(payload: &(dyn Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    text.is_some_and(|text| text.starts_with(EXPECTED)) || payload.is::<ExpectedPayload>()
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub async fn sleep_secs(n: u64) {
    tokio::time::sleep(secs(n)).await;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a [`Probe`] saw of the future it watches.
#[derive(Debug, Clone, Default)]
pub struct ProbeState {
    /// The future was polled at least once.
    pub polled: bool,
    /// The future ran to its end (set by the code under test).
    pub finished: bool,
    /// When the guard was dropped (paused clock).
    pub dropped_at: Option<Instant>,
    /// `tethered::current().cancel_reason()` seen from the guard's `Drop`.
    pub reason: Option<CancelReason>,
    /// `tethered::current().is_cancelled()` seen from the guard's `Drop`.
    pub cancelled: bool,
    /// `tethered::is_stopping()` seen from the guard's `Drop`.
    pub stopping: bool,
}

/// Watches one future: whether it was polled, when it was dropped and what
/// `tethered::current()` said while it was being dropped.
#[derive(Debug, Clone, Default)]
pub struct Probe(Arc<Mutex<ProbeState>>);

impl Probe {
    pub fn new() -> Self {
        Probe::default()
    }

    /// A guard that records into the probe when dropped.
    pub fn guard(&self) -> ProbeGuard {
        ProbeGuard(self.clone())
    }

    pub fn state(&self) -> ProbeState {
        lock(&self.0).clone()
    }

    pub fn mark_polled(&self) {
        lock(&self.0).polled = true;
    }

    pub fn mark_finished(&self) {
        lock(&self.0).finished = true;
    }

    pub fn polled(&self) -> bool {
        self.state().polled
    }

    pub fn finished(&self) -> bool {
        self.state().finished
    }

    pub fn dropped(&self) -> bool {
        self.state().dropped_at.is_some()
    }

    pub fn dropped_at(&self) -> Option<Instant> {
        self.state().dropped_at
    }

    /// The reason seen from `Drop` (panics if the guard was not dropped as a
    /// cancelled task).
    pub fn reason(&self) -> CancelReason {
        let state = self.state();
        assert!(
            state.dropped_at.is_some(),
            "the probed future was not dropped"
        );
        state
            .reason
            .expect("the probed future was dropped without a cancel reason")
    }

    /// A future that hangs until it is cancelled, recording into the probe.
    pub fn hang(&self) -> impl Future<Output = ()> + Send + 'static {
        let guard = self.guard();
        let probe = self.clone();
        async move {
            let _guard = guard;
            probe.mark_polled();
            std::future::pending::<()>().await
        }
    }

    /// A future that sleeps `duration` then finishes, recording into the probe.
    pub fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        let guard = self.guard();
        let probe = self.clone();
        async move {
            let _guard = guard;
            probe.mark_polled();
            tokio::time::sleep(duration).await;
            probe.mark_finished();
        }
    }
}

/// Records into its [`Probe`] when dropped.
#[derive(Debug)]
pub struct ProbeGuard(Probe);

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        let current = tethered::current();
        let mut state = lock(&(self.0).0);
        state.dropped_at = Some(Instant::now());
        state.reason = current.cancel_reason();
        state.cancelled = current.is_cancelled();
        state.stopping = tethered::is_stopping();
    }
}

/// An ordered log of named events with paused-clock timestamps relative to
/// the log's creation.
#[derive(Debug, Clone)]
pub struct Log {
    start: Instant,
    events: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

impl Log {
    pub fn new() -> Self {
        Log {
            start: Instant::now(),
            events: Arc::default(),
        }
    }

    pub fn push(&self, event: impl Into<String>) {
        let at = self.start.elapsed();
        lock(&self.events).push((event.into(), at));
    }

    /// Time since the log was created.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn names(&self) -> Vec<String> {
        lock(&self.events)
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// When `event` was logged (panics if it was not).
    pub fn at(&self, event: &str) -> Duration {
        lock(&self.events)
            .iter()
            .find(|(name, _)| name == event)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("event `{event}` was not logged; log: {:?}", self.names()))
    }

    pub fn contains(&self, event: &str) -> bool {
        lock(&self.events).iter().any(|(name, _)| name == event)
    }
}

/// A shared boolean.
#[derive(Debug, Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn new() -> Self {
        Flag::default()
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
