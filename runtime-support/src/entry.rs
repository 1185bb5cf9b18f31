//! The runners behind `#[tethered::main]` and `#[tethered::test]`: a root
//! scope on a tokio runtime, plus (for `main`) signal handling and an exit
//! code that says whether everything ended cleanly.

use std::fmt;
use std::panic::Location;
use std::process::ExitCode;
use std::time::Duration;

use tokio::runtime::{LocalRuntime, Runtime};

use crate::budget::{self, Allowance};
use crate::local::{LocalScope, NonSend};
use crate::reason::{CancelKind, CancelReason};
use crate::scope::{Ended, Holder, Scope, ScopeBuilder, ScopeHandle};

/// What `main` may return: `()`, `ExitCode`, or `Result<(), E>` with
/// `E: Debug` (printed as `Error: …` on stderr, as std's `main` does).
#[diagnostic::on_unimplemented(
    message = "`#[tethered::main]` returns `()`, `ExitCode` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "`main` returns `{Self}`",
    note = "the process's exit code comes from what `main` returns: 0 for `()` or `Ok(())`, the code for an `ExitCode`, 1 (with `Error: …` on stderr) for `Err`"
)]
pub trait MainOutput {
    /// The process's exit code.
    fn into_exit_code(self) -> ExitCode;

    /// What went wrong, when the body failed: that cancels the tasks still
    /// running, with this as the reason's message (as a `#[scoped]` fn's
    /// body returning `Err` does).
    fn failure(&self) -> Option<String> {
        None
    }
}

impl MainOutput for () {
    fn into_exit_code(self) -> ExitCode {
        ExitCode::SUCCESS
    }
}

impl MainOutput for ExitCode {
    fn into_exit_code(self) -> ExitCode {
        self
    }
}

impl<E: fmt::Debug> MainOutput for Result<(), E> {
    fn failure(&self) -> Option<String> {
        describe_error(self)
    }

    fn into_exit_code(self) -> ExitCode {
        match self {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("Error: {error:?}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs `body` as the root scope `main` on `runtime`, with signal handling:
/// the first SIGINT, SIGTERM or SIGHUP asks everything to stop (reason
/// [`Signal`](CancelKind::Signal)), and cancels it after `grace`; a second
/// signal cancels at once. If tasks are still running `cancel_timeout` after
/// the cancellation, the task tree is printed and the process exits with 1
/// rather than hang.
///
/// The signals and the deadlines are watched from a thread of its own (see
/// `Watchdog`): a task that blocks the runtime's threads cannot hold them
/// up. With `dump_tree`, each SIGUSR1 prints the task tree on stderr, from
/// that thread too: a program whose workers are all blocked can still say
/// what it is doing.
///
/// Exit code 0 when the scope ended cleanly or was cleanly cancelled by a
/// signal; otherwise 1, with the scope's error on stderr.
#[track_caller]
pub fn main<F, R>(
    runtime: Runtime,
    grace: Duration,
    cancel_timeout: Duration,
    dump_tree: bool,
    body: F,
) -> ExitCode
where
    F: AsyncFnOnce(&Scope) -> R,
    R: MainOutput,
{
    let location = Location::caller();
    let handle = runtime.handle().clone();
    watched(
        location,
        grace,
        cancel_timeout,
        dump_tree,
        handle,
        |scope_tx| runtime.block_on(run_main(location, grace, cancel_timeout, scope_tx, body)),
    )
}

/// [`main`] on a `LocalRuntime` (`flavor = "local"`), its root scope able
/// to hold local children that may be `!Send`; signals, grace and cancel
/// timeout as on the other runtimes.
#[track_caller]
pub fn main_local<F, R>(
    runtime: LocalRuntime,
    grace: Duration,
    cancel_timeout: Duration,
    dump_tree: bool,
    body: F,
) -> ExitCode
where
    F: for<'env> AsyncFnOnce(&LocalScope<'env, NonSend>) -> R,
    R: MainOutput,
{
    let location = Location::caller();
    let handle = runtime.handle().clone();
    watched(
        location,
        grace,
        cancel_timeout,
        dump_tree,
        handle,
        |scope_tx| runtime.block_on(run_main(location, grace, cancel_timeout, scope_tx, body)),
    )
}

/// Runs `main` (`run`, given where its root scope's handle goes) under the
/// watchdog: its signals, its deadlines, its exit code.
fn watched<R: MainOutput>(
    location: &'static Location<'static>,
    grace: Duration,
    cancel_timeout: Duration,
    dump_tree: bool,
    runtime: tokio::runtime::Handle,
    run: impl FnOnce(tokio::sync::oneshot::Sender<ScopeHandle>) -> Ended<R>,
) -> ExitCode {
    let dump_tree = dump_tree.then_some(runtime);
    let (watchdog, scope_tx) = match Watchdog::start(location, grace, cancel_timeout, dump_tree) {
        Ok(started) => started,
        Err(error) => {
            eprintln!("tethered: cannot listen for signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ended = run(scope_tx);
    watchdog.stop();
    exit_code(ended, |line| eprintln!("{line}"))
}

/// The root scope `main`, running `body`: its handle goes to the watcher
/// (through `scope_tx`), and what its tasks get to shut down in after a
/// signal is on record, for a supervisor among them to check its own
/// budget against.
pub(crate) async fn run_main<S, F, R>(
    location: &'static Location<'static>,
    grace: Duration,
    cancel_timeout: Duration,
    scope_tx: tokio::sync::oneshot::Sender<ScopeHandle>,
    body: F,
) -> Ended<R>
where
    S: Holder,
    F: AsyncFnOnce(&S) -> R,
    R: MainOutput,
{
    ScopeBuilder::new()
        .name("main")
        .run_at(
            location,
            async move |holder: &S| {
                let scope = holder.parts().0;
                let _ = scope_tx.send(scope.handle());
                let _allowed = budget::allow(
                    scope.node(),
                    Allowance {
                        budget: Some(grace.saturating_add(cancel_timeout)),
                        giver: format!(
                            "`main` (grace {grace:?} + cancel timeout {cancel_timeout:?})"
                        ),
                        from_main: true,
                    },
                );
                body(holder).await
            },
            R::failure,
        )
        .await
}

/// The exit code of a `main` that ended so; what it says goes to `say`.
pub(crate) fn exit_code<R: MainOutput>(ended: Ended<R>, say: impl Fn(String)) -> ExitCode {
    match ended {
        Ended::Clean(output, _) => output.into_exit_code(),
        Ended::Failed { value, error } if error.is_cancelled() => {
            if let Some(reason) = error.reason() {
                say(format!("tethered: stopped: {reason}"));
            }
            value.map_or(ExitCode::SUCCESS, MainOutput::into_exit_code)
        }
        // The body's own error is what `main` reports.
        Ended::Failed {
            value: Some(output),
            ..
        } if output.failure().is_some() => output.into_exit_code(),
        Ended::Failed { error, .. } => {
            say(format!("tethered: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// The thread that watches for signals and enforces `main`'s deadlines.
///
/// It runs a small runtime of its own, so that neither depends on the
/// program's runtime making progress: with the current-thread flavour a
/// single task blocked in a system call stops everything else on that
/// runtime (its signal handling and its timers included), and with the
/// multi-thread one so do as many blocked tasks as there are workers.
struct Watchdog {
    thread: std::thread::JoinHandle<()>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Watchdog {
    /// Starts the thread and returns once it listens for signals (so that
    /// an early signal is not lost to the default handler), with the sender
    /// the root scope's handle goes to.
    fn start(
        location: &'static Location<'static>,
        grace: Duration,
        cancel_timeout: Duration,
        dump_tree: Option<tokio::runtime::Handle>,
    ) -> std::io::Result<(Self, tokio::sync::oneshot::Sender<ScopeHandle>)> {
        let (scope_tx, scope_rx) = tokio::sync::oneshot::channel();
        let (done, done_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tethered-signals".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let signals = match Signals::new() {
                        Ok(signals) => signals,
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return;
                        }
                    };
                    let dumps = match dump_tree.map(TreeDumps::new).transpose() {
                        Ok(dumps) => dumps,
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let say = |line: String| eprintln!("{line}");
                    tokio::select! {
                        () = watch(signals, scope_rx, location, grace, cancel_timeout, say) => {
                            // Given up on: exit rather than hang.
                            std::process::exit(1);
                        }
                        () = TreeDumps::run(dumps) => {}
                        _ = done_rx => {}
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((Watchdog { thread, done }, scope_tx)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(std::io::Error::other(
                "the signal thread ended before it started",
            )),
        }
    }

    /// Ends the watch: `main` is returning.
    fn stop(self) {
        let _ = self.done.send(());
        let _ = self.thread.join();
    }
}

/// What a `#[tethered::test]` may return: `()` or a `Result` (an `Err`
/// cancels the tasks still running, then fails the test as usual).
#[diagnostic::on_unimplemented(
    message = "`#[tethered::test]` returns `()` or `Result<T, E>` with `E: Debug`, not `{Self}`",
    label = "the test returns `{Self}`",
    note = "an `Err` fails the test, as in `#[test]`"
)]
pub trait TestOutput {
    /// What went wrong, when the body failed.
    fn failure(&self) -> Option<String>;
}

impl TestOutput for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: fmt::Debug> TestOutput for Result<T, E> {
    fn failure(&self) -> Option<String> {
        describe_error(self)
    }
}

/// The reason's message for a body that returned `Err`: its `Debug`, which
/// is what `main` and the test harness print for it too.
fn describe_error<T, E: fmt::Debug>(result: &Result<T, E>) -> Option<String> {
    let error = result.as_ref().err()?;
    Some(format!("the body returned an error: {error:?}"))
}

/// Runs `body` as the root scope of a test on `runtime`. A failure of the
/// scope fails the test with the scope's error.
#[track_caller]
pub fn test<F, R>(runtime: Runtime, body: F) -> R
where
    F: AsyncFnOnce(&Scope) -> R,
    R: TestOutput,
{
    let location = Location::caller();
    let ended = runtime.block_on(ScopeBuilder::new().name("test").run_at(
        location,
        body,
        R::failure,
    ));
    test_result(ended)
}

/// [`test`] on a `LocalRuntime` (`flavor = "local"`), its root scope able
/// to hold local children that may be `!Send`.
#[track_caller]
pub fn test_local<F, R>(runtime: LocalRuntime, body: F) -> R
where
    F: for<'env> AsyncFnOnce(&LocalScope<'env, NonSend>) -> R,
    R: TestOutput,
{
    let location = Location::caller();
    let ended = runtime.block_on(ScopeBuilder::new().name("test").run_at(
        location,
        body,
        R::failure,
    ));
    test_result(ended)
}

/// What a test whose scope ended so returns, or its panic.
#[track_caller]
fn test_result<R: TestOutput>(ended: Ended<R>) -> R {
    match ended {
        Ended::Clean(value, _) => value,
        // The body's own error fails the test, as the harness shows it.
        Ended::Failed {
            value: Some(value), ..
        } if value.failure().is_some() => value,
        // Out here, the panic is located at the test (`#[track_caller]`).
        Ended::Failed { error, .. } => panic!("the test's scope failed: {error}"),
    }
}

/// Where `main`'s watcher takes its signals from: the process's, or a
/// test's script (see [`crate::testing::MainTest`]).
pub(crate) trait SignalSource: Send {
    /// Waits for the next signal and names it.
    fn next(&mut self) -> impl std::future::Future<Output = &'static str> + Send;
}

/// `main`'s watcher: the first signal stops the root scope, the grace's
/// end or a second signal cancels it, and `cancel_timeout` after that it
/// gives up: it says so, with the tree, and returns (the process then
/// exits rather than hang). What it says goes to `say`, a line at a time.
pub(crate) async fn watch(
    mut signals: impl SignalSource,
    handle: tokio::sync::oneshot::Receiver<ScopeHandle>,
    location: &'static Location<'static>,
    grace: Duration,
    cancel_timeout: Duration,
    say: impl Fn(String),
) {
    let Ok(handle) = handle.await else {
        return std::future::pending().await;
    };
    let first = signals.next().await;
    say(format!(
        "tethered: received {first}; stopping (grace {grace:?}; send it again to cancel at once)"
    ));
    let reason = CancelReason::raised_by(CancelKind::Signal, location, None)
        .with_message(format!("received {first}"));
    handle.stop(reason.clone());
    // The cancellation says why it came before the work was done, and
    // what it follows from.
    let cancel = tokio::select! {
        () = tokio::time::sleep(grace) => {
            say("tethered: grace period over; cancelling".to_owned());
            CancelReason::raised_by(CancelKind::Timeout, location, None)
                .with_message(format!("still running when `main`'s grace of {grace:?} ran out"))
        }
        second = signals.next() => {
            let again = if second == first { " again" } else { "" };
            say(format!("tethered: received {second}{again}; cancelling now"));
            CancelReason::raised_by(CancelKind::Signal, location, None)
                .with_message(format!("received {second}{again}"))
        }
    };
    handle.cancel(cancel.caused_by(reason));
    tokio::time::sleep(cancel_timeout).await;
    say(format!(
        "tethered: still running {cancel_timeout:?} after cancellation; exiting\n{}",
        crate::tree()
    ));
}

/// SIGUSR1, which prints the task tree on stderr; registered before the
/// body runs, so that an early one does not kill the process (SIGUSR1's
/// default action).
struct TreeDumps {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
    /// The runtime `main` runs on, whose tasks tokio dumps.
    #[cfg(all(tokio_unstable, feature = "taskdump"))]
    main: tokio::runtime::Handle,
}

/// How long a SIGUSR1 waits for tokio's task dump before it prints the
/// tree without it.
#[cfg(all(tokio_unstable, feature = "taskdump"))]
const TASK_DUMP_TIMEOUT: Duration = Duration::from_secs(2);

impl TreeDumps {
    #[cfg(unix)]
    #[cfg_attr(
        not(all(tokio_unstable, feature = "taskdump")),
        allow(unused_variables)
    )]
    fn new(main: tokio::runtime::Handle) -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(TreeDumps {
            signal: signal(SignalKind::user_defined1())?,
            #[cfg(all(tokio_unstable, feature = "taskdump"))]
            main,
        })
    }

    /// Elsewhere there is no SIGUSR1.
    #[cfg(not(unix))]
    fn new(_: tokio::runtime::Handle) -> std::io::Result<Self> {
        Ok(TreeDumps {})
    }

    /// The tree, as text; with tokio's task dump in it when there is one.
    #[cfg(unix)]
    async fn render(&self) -> String {
        // Dumped by a task on `main`'s runtime, as tokio asks, and waited
        // for here: a runtime whose threads are blocked does not answer,
        // and the tree is printed without the traces.
        #[cfg(all(tokio_unstable, feature = "taskdump"))]
        {
            let dump = self.main.spawn(crate::task_dump());
            match tokio::time::timeout(TASK_DUMP_TIMEOUT, dump).await {
                Ok(Ok(dump)) => dump.to_string(),
                _ => format!(
                    "{}(no task dump: the runtime did not answer within {TASK_DUMP_TIMEOUT:?}; \
                     are its threads blocked?)\n",
                    crate::tree()
                ),
            }
        }
        #[cfg(not(all(tokio_unstable, feature = "taskdump")))]
        crate::tree().to_string()
    }

    /// Prints the tree on each SIGUSR1, for as long as `main` runs.
    async fn run(dumps: Option<Self>) {
        let Some(mut dumps) = dumps else {
            return std::future::pending().await;
        };
        #[cfg(unix)]
        while dumps.signal.recv().await.is_some() {
            eprintln!(
                "tethered: the task tree (SIGUSR1):\n{}",
                dumps.render().await
            );
        }
        #[cfg(not(unix))]
        let _ = &mut dumps;
        std::future::pending().await
    }
}

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C elsewhere), registered before the
/// body runs so that an early signal is not lost to the default handler.
///
/// SIGHUP too: its default action ends the process on the spot, and it
/// comes when the terminal a program runs in closes, or from a service
/// manager; a program that wants it for something else (a reload) says so
/// with its own handler, registered before this one would matter.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Self> {
        Ok(Signals {})
    }
}

impl SignalSource for Signals {
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
