//! [`MainTest`]: a `#[tethered::main]` body taken through signals, its
//! grace and its cancel timeout, in the test's own process, on tokio's
//! paused clock.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::entry::{self, MainOutput, SignalSource};
use crate::scope::Scope;

/// Runs an async body as `#[tethered::main]` runs its own, with the signals
/// a test schedules instead of the process's, and reports how it ended:
/// its exit code and what `main` said on stderr. The same code as `main`'s
/// (a root scope named `main`, a stop on the first signal, a cancellation
/// after `grace` or on a second signal, giving up `cancel_timeout` after
/// that), run on the test's runtime, so that on a paused clock the whole
/// shutdown takes no time.
///
/// Write the program's body as a function the test can call, and have
/// `main` call it:
///
/// ```
/// use std::time::Duration;
/// use tethered::Scope;
///
/// /// The whole program; `main` is `#[tethered::main] async fn main() { serve(scope!()).await }`.
/// async fn serve(scope: &Scope) {
///     scope.spawn_named("worker", async {
///         tethered::stop_requested().await; // finish up, then end
///     });
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use tethered::testing::MainTest;
///
/// let run = MainTest::new()
///     .grace(Duration::from_secs(5))
///     .sigterm_after(Duration::from_secs(1))
///     .run(serve)
///     .await;
/// assert_eq!(run.exit_code, std::process::ExitCode::SUCCESS);
/// assert_eq!(run.took, Duration::from_secs(1)); // it stopped at once
/// assert!(run.said("received SIGTERM; stopping"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MainTest {
    grace: Duration,
    cancel_timeout: Duration,
    /// Signals to send, each with when (after the start), in order.
    signals: Vec<(Duration, &'static str)>,
}

/// How a [`MainTest`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct MainRun {
    /// The exit code `main` would have exited with.
    pub exit_code: ExitCode,
    /// Whether `main` gave up on tasks still running `cancel_timeout` after
    /// the cancellation (the process would have exited with 1 then; the
    /// tree of what was still running is in [`stderr`](Self::stderr)).
    pub gave_up: bool,
    /// What `main` said on stderr, a line at a time (a line may hold a
    /// tree): the signals, the grace's end, the reason it stopped.
    pub stderr: Vec<String>,
    /// How long it ran, on the runtime's clock.
    pub took: Duration,
}

impl MainRun {
    /// Whether one of the lines on stderr contains `text`.
    pub fn said(&self, text: &str) -> bool {
        self.stderr.iter().any(|line| line.contains(text))
    }
}

impl Default for MainTest {
    fn default() -> Self {
        MainTest::new()
    }
}

impl MainTest {
    /// `#[tethered::main]`'s defaults: a grace of 10 s, a cancel timeout of
    /// 30 s, and no signal.
    pub fn new() -> Self {
        MainTest {
            grace: Duration::from_secs(10),
            cancel_timeout: Duration::from_secs(30),
            signals: Vec::new(),
        }
    }

    /// As `#[tethered::main(grace = "…")]`.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// As `#[tethered::main(cancel_timeout = "…")]`.
    pub fn cancel_timeout(mut self, timeout: Duration) -> Self {
        self.cancel_timeout = timeout;
        self
    }

    /// Sends SIGTERM `after` the start.
    pub fn sigterm_after(self, after: Duration) -> Self {
        self.signal_after(after, "SIGTERM")
    }

    /// Sends SIGINT (Ctrl-C) `after` the start.
    pub fn sigint_after(self, after: Duration) -> Self {
        self.signal_after(after, "SIGINT")
    }

    fn signal_after(mut self, after: Duration, signal: &'static str) -> Self {
        self.signals.push((after, signal));
        self.signals.sort_by_key(|(after, _)| *after);
        self
    }

    /// Runs `body` as `main`'s, until it ends or `main` gives up on it.
    /// Await it inside a tokio runtime, paused for a test that takes no
    /// time (`#[tokio::test(start_paused = true)]`).
    #[track_caller]
    pub fn run<F, R>(self, body: F) -> impl Future<Output = MainRun>
    where
        F: AsyncFnOnce(&Scope) -> R,
        R: MainOutput,
    {
        let location = Location::caller();
        async move {
            let started = Instant::now();
            let lines: Arc<Mutex<Vec<String>>> = Arc::default();
            let said = lines.clone();
            let say = move |line: String| said.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            let (scope_tx, scope_rx) = tokio::sync::oneshot::channel();
            let signals = Scripted {
                started,
                signals: self.signals.into_iter().collect(),
            };
            let watching = entry::watch(
                signals,
                scope_rx,
                location,
                self.grace,
                self.cancel_timeout,
                say.clone(),
            );
            let running =
                entry::run_main(location, self.grace, self.cancel_timeout, scope_tx, body);
            let (exit_code, gave_up) = tokio::select! {
                ended = running => (entry::exit_code(ended, say), false),
                () = watching => (ExitCode::FAILURE, true),
            };
            let stderr = std::mem::take(&mut *lines.lock().unwrap_or_else(|p| p.into_inner()));
            MainRun {
                exit_code,
                gave_up,
                stderr,
                took: started.elapsed(),
            }
        }
    }
}

/// Signals at set times.
struct Scripted {
    started: Instant,
    signals: VecDeque<(Duration, &'static str)>,
}

impl SignalSource for Scripted {
    async fn next(&mut self) -> &'static str {
        match self.signals.pop_front() {
            Some((after, signal)) => {
                tokio::time::sleep_until(crate::deadline::after(self.started, after)).await;
                signal
            }
            None => std::future::pending().await,
        }
    }
}
