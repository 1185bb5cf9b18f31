//! The helpers example (`examples/helpers_on_exit.rs`) reports what it
//! promises: when the connection's main loop ends, its helpers are
//! cancelled with a `ScopeExit` reason raised by the connection's scope, and
//! the `defer!` cleanup runs after both have ended. On paused time, so every
//! instant is exact.

use std::time::Duration;

use tethered::{CancelKind, CancelReason};
use tethered_examples::helpers_on_exit::{self, Report};

/// The reason `on_exit = cancel` raises: located at the `#[scoped]`
/// attribute, naming the scope.
fn assert_is_scope_exit(reason: &CancelReason) {
    assert_eq!(reason.kind(), CancelKind::ScopeExit, "{reason}");
    assert_eq!(reason.origin(), Some("connection"), "{reason}");
    assert_eq!(reason.message(), None, "{reason}");
    assert!(reason.cause().is_none(), "{reason}");
    assert!(
        reason.location().file().ends_with("helpers_on_exit.rs"),
        "{}",
        reason.location()
    );
}

fn position(report: &Report, what: &str) -> usize {
    report
        .timeline
        .iter()
        .position(|event| event.what == what)
        .unwrap_or_else(|| panic!("`{what}` is not in the timeline:\n{report}"))
}

#[tokio::test(start_paused = true)]
async fn helpers_are_cancelled_when_the_main_loop_ends_then_the_socket_closes() {
    let report = helpers_on_exit::run().await;
    println!("{report}");

    // The main loop handled both text frames and ended on the close frame.
    assert_eq!(report.frames_received, 2);
    // Pings at 100, 200, 300 and 400 ms; the close frame came at 420 ms.
    assert_eq!(
        report.sent,
        [
            "ack \"subscribe orders\"",
            "ping",
            "event \"order #17 shipped\"",
            "ack \"hello\"",
            "ping",
            "event \"order #18 packed\"",
            "ping",
            "ping",
        ]
    );

    // Both helpers were cancelled, by the scope's exit, at once.
    let mut helpers: Vec<_> = report.helpers.iter().map(|exit| exit.helper).collect();
    helpers.sort_unstable();
    assert_eq!(helpers, ["event-bus", "keepalive"]);
    for exit in &report.helpers {
        let reason = exit
            .reason
            .as_ref()
            .expect("a helper never ends on its own");
        assert_is_scope_exit(reason);
    }
    assert!(
        report.helpers[0]
            .reason
            .as_ref()
            .unwrap()
            .same_as(report.helpers[1].reason.as_ref().unwrap())
    );

    // The cleanup saw the same reason: its scope was cancelled on exit.
    let saw = report
        .cleanup_saw
        .as_ref()
        .expect("the scope was cancelled on exit");
    assert_is_scope_exit(saw);
    assert!(saw.same_as(report.helpers[0].reason.as_ref().unwrap()));

    // In order: the main loop ends, the helpers are cancelled, then the
    // socket is closed, 20 ms later.
    let ended = position(&report, "peer sent close; the main loop ends");
    let keepalive = position(&report, "keepalive cancelled: scope exited");
    let event_bus = position(&report, "event-bus cancelled: scope exited");
    let closing = position(&report, "cleanup: sending the close frame");
    let closed = position(&report, "cleanup: socket closed");
    assert!(ended < keepalive.min(event_bus), "{report}");
    assert!(keepalive.max(event_bus) < closing, "{report}");
    assert!(closing < closed, "{report}");
    assert_eq!(closed, report.timeline.len() - 1, "{report}");
    assert_eq!(report.timeline[ended].at, Duration::from_millis(420));
    assert_eq!(report.timeline[closed].at, Duration::from_millis(440));
    assert_eq!(report.elapsed, Duration::from_millis(440));
}
