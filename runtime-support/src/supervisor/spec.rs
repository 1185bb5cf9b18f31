//! What a supervisor is told about its restartable children: [`ChildSpec`],
//! [`Restart`], [`Strategy`], [`Backoff`] and [`ChildShutdown`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::time::Duration;

use super::child::ChildOutput;
use crate::error::TaskError;
use crate::random;

/// When a supervisor restarts a child that ended (OTP's restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always: the child is meant to run as long as the supervisor.
    #[default]
    Permanent,
    /// Only when it failed (returned `Err` or panicked); a child that
    /// completes is done.
    Transient,
    /// Never: the child runs once, however it ends.
    Temporary,
}

/// Which children a supervisor restarts when one of them is restarted
/// (OTP's strategies). Children are restarted in declaration order and
/// stopped in reverse order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that ended: the children are independent.
    #[default]
    OneForOne,
    /// Every child: the others are stopped (last declared first), then all
    /// are started again. For children that cannot work without each other.
    OneForAll,
    /// The child and those declared after it: each depends on the ones
    /// declared before it.
    RestForOne,
}

/// How long a supervisor waits before restarting a child: `initial` after
/// its first failure, multiplied by `factor` after each further one, never
/// more than `max`.
///
/// The count of consecutive restarts starts again once a child has run for
/// at least `max` without ending: a child that crashes once a day always
/// restarts after `initial`. With a jitter fraction `j`, each delay is
/// drawn uniformly from `[delay × (1 − j), delay]` (from the supervisor's
/// seed, so a test sees the same delays every run): restarts of many
/// children spread out instead of arriving together.
///
/// The default waits 100 ms, doubling up to 5 s, without jitter.
///
/// ```
/// use std::time::Duration;
/// use tethered::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).factor(3.0);
/// assert_eq!(backoff.delay(0, 0), Duration::from_millis(100));
/// assert_eq!(backoff.delay(1, 0), Duration::from_millis(300));
/// assert_eq!(backoff.delay(2, 0), Duration::from_millis(900));
/// assert_eq!(backoff.delay(3, 0), Duration::from_secs(1));
/// assert_eq!(Backoff::none().delay(7, 0), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles after each consecutive restart, stops
    /// growing at `max` (raised to `initial` if smaller).
    pub const fn new(initial: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < initial.as_nanos() {
            initial
        } else {
            max
        };
        Backoff {
            initial,
            max,
            factor: 2.0,
            jitter: 0.0,
        }
    }

    /// Restarts at once, every time (the intensity limit still applies).
    pub const fn none() -> Self {
        Backoff::new(Duration::ZERO, Duration::ZERO)
    }

    /// How much each consecutive restart multiplies the delay by; values
    /// below 1 (or not a number) are taken as 1.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor >= 1.0 { factor } else { 1.0 };
        self
    }

    /// The fraction of each delay that is random, clamped to `[0, 1]`.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The first delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before restart number `attempt` (0 for the first of a
    /// series), with the jitter drawn from `seed`.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let grown = self.initial.as_secs_f64() * self.factor.powf(f64::from(attempt));
        // `try_from`: a value just under `max` in `f64` may still round to
        // more than a `Duration` holds.
        let delay = match Duration::try_from_secs_f64(grown) {
            Ok(grown) if grown < self.max => grown,
            _ => self.max,
        };
        if self.jitter == 0.0 {
            return delay;
        }
        let scaled = delay.as_secs_f64() * (1.0 - self.jitter * random::unit(seed));
        Duration::try_from_secs_f64(scaled).map_or(delay, |scaled| scaled.min(delay))
    }
}

/// How long a static child may take to stop when its supervisor shuts down,
/// or when a sibling's restart stops it (OTP's `shutdown`).
///
/// Static children are stopped one at a time, last declared first, each
/// within its own budget: a child that ignores the stop uses up its own
/// time, not the time of the children stopped after it. Without a
/// `shutdown`, a child gets the supervisor's `grace`.
///
/// ```
/// use std::time::Duration;
/// use tethered::{ChildShutdown, ChildSpec};
///
/// # async fn flush_and_exit() {}
/// # async fn poll_metrics() {}
/// // Finishing its writes may take 30 s; it gets them.
/// let writer = ChildSpec::new("writer", flush_and_exit)
///     .shutdown(ChildShutdown::Timeout(Duration::from_secs(30)));
/// // Nothing to lose: cancelled at once.
/// let metrics = ChildSpec::new("metrics", poll_metrics).shutdown(ChildShutdown::Brutal);
/// # let _ = (writer, metrics);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildShutdown {
    /// Cancelled at once, without being asked to stop first (OTP's
    /// `brutal_kill`).
    Brutal,
    /// Asked to stop, given this long to end, then cancelled.
    Timeout(Duration),
    /// Asked to stop, and waited for as long as it takes: for a child that
    /// is itself a supervisor, whose own shutdown is bounded. The
    /// supervisor's shutdown is then only as bounded as the child.
    Infinity,
}

impl ChildShutdown {
    /// A child's `shutdown`, or the supervisor's `grace` when it has none.
    pub(crate) fn or_grace(shutdown: Option<ChildShutdown>, grace: Duration) -> ChildShutdown {
        shutdown.unwrap_or(ChildShutdown::Timeout(grace))
    }

    /// How long the child may keep running once asked to stop, before it
    /// is cancelled; `None` for as long as it takes.
    pub fn budget(self) -> Option<Duration> {
        match self {
            ChildShutdown::Brutal => Some(Duration::ZERO),
            ChildShutdown::Timeout(limit) => Some(limit),
            ChildShutdown::Infinity => None,
        }
    }
}

/// A child's future, its output type erased.
pub(crate) type ChildFuture = Pin<Box<dyn Future<Output = ErasedOutput> + Send>>;

/// The output of a [`ChildFuture`]: already a result, passed through as is.
pub(crate) struct ErasedOutput(pub(crate) Result<(), TaskError>);

impl ChildOutput for ErasedOutput {
    fn into_child_result(self) -> Result<(), TaskError> {
        self.0
    }
}

/// A restartable child: a name, a factory that makes the child's future
/// (called again on every restart), a [`Restart`] policy and a [`Backoff`].
///
/// The factory may borrow from the code that runs the supervisor (`'a`);
/// the futures it makes are tasks, so they own what they use:
///
/// ```
/// use tethered::{Backoff, ChildSpec, Restart};
///
/// async fn ingest(queue: String) -> Result<(), std::io::Error> {
///     # let _ = queue;
///     Ok(())
/// }
///
/// let queue = String::from("jobs");
/// let spec = ChildSpec::new("ingest", || ingest(queue.clone()))
///     .restart(Restart::Transient)
///     .backoff(Backoff::default().jitter(0.2));
/// assert_eq!(spec.name(), "ingest");
/// ```
pub struct ChildSpec<'a> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) restart: Restart,
    pub(crate) backoff: Backoff,
    /// `None`: the supervisor's grace.
    pub(crate) shutdown: Option<ChildShutdown>,
    pub(crate) factory: Box<dyn FnMut() -> ChildFuture + Send + 'a>,
}

impl<'a> ChildSpec<'a> {
    /// A [`Permanent`](Restart::Permanent) child with the default
    /// [`Backoff`]. Its future returns `()` or `Result<(), E>`; an `Err` or a
    /// panic is a failure.
    #[track_caller]
    pub fn new<F, Fut>(name: impl Into<Cow<'static, str>>, mut factory: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future + Send + 'static,
        Fut::Output: ChildOutput,
    {
        ChildSpec {
            name: name.into(),
            location: Location::caller(),
            restart: Restart::default(),
            backoff: Backoff::default(),
            shutdown: None,
            factory: Box::new(move || {
                let future = factory();
                Box::pin(async move { ErasedOutput(future.await.into_child_result()) })
            }),
        }
    }

    /// When the child is restarted.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How long to wait before restarting it.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long it may take to stop (default: the supervisor's grace).
    pub fn shutdown(mut self, shutdown: ChildShutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ChildSpec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("location", &format_args!("{}", self.location))
            .field("restart", &self.restart)
            .field("backoff", &self.backoff)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_saturate_at_their_max_however_large() {
        let huge = Backoff::new(Duration::MAX, Duration::MAX).jitter(0.5);
        for attempt in [0, 1, 7, u32::MAX] {
            assert!(huge.delay(attempt, 99) <= Duration::MAX);
        }
        let steep = Backoff::new(Duration::from_millis(1), Duration::MAX).factor(1e300);
        assert_eq!(steep.delay(1_000, 0), Duration::MAX);
        assert_eq!(steep.delay(0, 0), Duration::from_millis(1));
    }
}
