//! `#[tethered::main]`'s signal handling, in process and on a paused clock,
//! through the test kit's `MainTest`: a stop on the first signal, a
//! cancellation after the grace or on a second signal, giving up after the
//! cancel timeout, and the exit code each leads to.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethered::testing::{MainTest, assert_cancelled};
use tethered::{CancelKind, CancelReason, Scope};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A program with one task that ends when asked to stop.
async fn polite(scope: &Scope) {
    scope.spawn_named("polite", async {
        tethered::stop_requested().await;
    });
}

/// A program with one task that ignores the stop; when it is cancelled,
/// it writes down why.
async fn stubborn(scope: &Scope, why: Arc<Mutex<Option<CancelReason>>>) {
    struct Report(Arc<Mutex<Option<CancelReason>>>);
    impl Drop for Report {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = tethered::current().cancel_reason();
        }
    }
    scope.spawn_named("stubborn", async move {
        let _report = Report(why);
        std::future::pending::<()>().await
    });
}

#[tokio::test(start_paused = true)]
async fn the_first_signal_stops_the_program_and_a_clean_end_exits_0() {
    let run = MainTest::new().sigterm_after(secs(1)).run(polite).await;
    assert_eq!(run.exit_code, ExitCode::SUCCESS);
    assert!(!run.gave_up);
    assert_eq!(run.took, secs(1));
    assert!(
        run.said("tethered: received SIGTERM; stopping (grace 10s"),
        "{:?}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_that_ignores_the_stop_is_cancelled_when_the_grace_is_over() {
    let why = Arc::new(Mutex::new(None));
    let run = MainTest::new()
        .grace(secs(5))
        .sigint_after(secs(1))
        .run(async |scope| stubborn(scope, why.clone()).await)
        .await;
    assert_eq!(run.took, secs(6));
    assert!(run.said("received SIGINT; stopping"));
    assert!(run.said("tethered: grace period over; cancelling"));
    // The body had returned; its task was cleanly cancelled: exit code 0.
    assert_eq!(run.exit_code, ExitCode::SUCCESS);
    // Cancelled because `main`'s grace ran out, which followed the signal.
    let reason = why.lock().unwrap().clone().expect("cancelled");
    let grace = reason
        .chain()
        .find(|link| link.kind() == CancelKind::Timeout)
        .expect("the grace's reason");
    assert_eq!(
        grace.message(),
        Some("still running when `main`'s grace of 5s ran out")
    );
    assert_eq!(reason.root().kind(), CancelKind::Signal);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_cancels_at_once() {
    let run = MainTest::new()
        .grace(secs(60))
        .sigterm_after(secs(1))
        .sigterm_after(secs(2))
        .run(async |scope| {
            let task = scope.spawn(std::future::pending::<()>());
            let reason = assert_cancelled!(task.join().await, CancelKind::Signal);
            assert_eq!(reason.message(), Some("received SIGTERM again"));
            assert_eq!(reason.cause().unwrap().message(), Some("received SIGTERM"));
        })
        .await;
    assert_eq!(run.took, secs(2));
    assert!(run.said("tethered: received SIGTERM again; cancelling now"));
    assert_eq!(run.exit_code, ExitCode::SUCCESS);
}

#[tokio::test(start_paused = true)]
async fn tasks_still_running_after_the_cancel_timeout_are_given_up_on_with_the_tree() {
    let run = MainTest::new()
        .grace(secs(1))
        .cancel_timeout(secs(2))
        .sigterm_after(secs(1))
        .run(async |scope| {
            scope.shield_named("stuck", std::future::pending::<()>());
        })
        .await;
    assert!(run.gave_up);
    assert_eq!(run.exit_code, ExitCode::FAILURE);
    assert_eq!(run.took, secs(4));
    assert!(run.said("tethered: still running 2s after cancellation; exiting"));
    assert!(run.said("shield `stuck`"), "{:?}", run.stderr);
}

#[tokio::test(start_paused = true)]
async fn without_a_signal_the_program_ends_when_its_body_does() {
    let run = MainTest::new()
        .run(async |_| {
            tokio::time::sleep(secs(3)).await;
        })
        .await;
    assert_eq!((run.exit_code, run.took), (ExitCode::SUCCESS, secs(3)));
    assert!(run.stderr.is_empty(), "{:?}", run.stderr);
}
