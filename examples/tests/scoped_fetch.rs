//! The fan-out example (`examples/scoped_fetch.rs`) reports what it
//! promises: the first failure cancels every sibling at once, and each
//! cancelled task can say, through its reason chain, that `orders` started
//! it all. On paused time, so every instant is exact.

use std::time::Duration;

use tethered::{CancelKind, CancelReason};
use tethered_examples::scoped_fetch::{self, BODY, Ended, FetchError, Report};

fn ended<'r>(report: &'r Report, task: &str) -> &'r scoped_fetch::Fate {
    report
        .fates
        .iter()
        .find(|fate| fate.task == task)
        .unwrap_or_else(|| panic!("no fate recorded for `{task}`: {:?}", report.fates))
}

fn cancel_reason<'r>(report: &'r Report, task: &str) -> &'r CancelReason {
    match &ended(report, task).ended {
        Ended::Cancelled(reason) => reason,
        other => panic!("`{task}` was not cancelled: {other:?}"),
    }
}

/// The reason `dashboard` raises when `orders` fails: located at the
/// `spawn!` of `orders`, naming it, with its error.
fn assert_is_orders_failure(reason: &CancelReason) {
    assert_eq!(reason.kind(), CancelKind::SiblingFailed, "{reason}");
    assert_eq!(reason.origin(), Some("orders"), "{reason}");
    assert_eq!(
        reason.message(),
        Some("task `orders` failed: orders answered HTTP 503")
    );
    assert!(
        reason.location().file().ends_with("scoped_fetch.rs"),
        "{}",
        reason.location()
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_cancels_every_sibling_and_says_so() {
    let report = scoped_fetch::run().await;
    println!("{report}");

    // Cancelling is immediate: everything is over when `orders` fails.
    assert_eq!(report.elapsed, Duration::from_millis(200));
    assert_eq!(report.fates.len(), 7, "{:?}", report.fates);

    // `profile` answered before the failure.
    let profile = ended(&report, "profile");
    assert!(matches!(profile.ended, Ended::Completed));
    assert_eq!(profile.after, Duration::from_millis(100));

    // `orders` failed, at 200 ms.
    let orders = ended(&report, "orders");
    assert!(
        matches!(&orders.ended, Ended::Failed(error) if error == "orders answered HTTP 503"),
        "{orders:?}"
    );
    assert_eq!(orders.after, Duration::from_millis(200));

    // The siblings of `orders` receive the very reason `dashboard` raised,
    // and so does the interrupted body.
    for task in ["recommendations", "inventory", BODY] {
        assert_eq!(ended(&report, task).after, Duration::from_millis(200));
        let reason = cancel_reason(&report, task);
        assert_is_orders_failure(reason);
        assert!(reason.cause().is_none(), "{reason}");
    }
    let sibling = cancel_reason(&report, "recommendations");
    assert!(sibling.same_as(cancel_reason(&report, "inventory")));

    // Inside the nested `#[scoped]` fn, each level adds a link.
    for task in ["recs/similar", "recs/trending"] {
        let reason = cancel_reason(&report, task);
        let links: Vec<_> = reason.chain().map(|r| (r.kind(), r.origin())).collect();
        assert_eq!(
            links,
            [
                (CancelKind::ParentCancelled, Some("recs")),
                (CancelKind::ParentCancelled, Some("recommendations")),
                (CancelKind::SiblingFailed, Some("orders")),
            ],
            "{reason}"
        );
        assert_is_orders_failure(reason.root());
        assert!(reason.root().same_as(sibling));
    }

    // What the caller gets: the scope's error, through `From<ScopeError>`,
    // holding exactly one failure with its own type.
    let error = match &report.result {
        Err(FetchError::Scope(error)) => error,
        other => panic!("expected the scope's error, got {other:?}"),
    };
    assert_eq!(error.scope(), Some("dashboard"));
    assert_eq!(error.failures().len(), 1, "{error}");
    assert_eq!(error.failures()[0].task(), Some("orders"));
    assert!(matches!(
        error.downcast_ref::<FetchError>(),
        Some(FetchError::Status {
            service: "orders",
            status: 503
        })
    ));
    assert_is_orders_failure(error.reason().expect("the failure cancelled the scope"));
}

#[tokio::test(start_paused = true)]
async fn the_report_prints_every_link_of_every_chain() {
    let text = scoped_fetch::run().await.to_string();
    assert!(
        text.contains("orders: failed after 200 ms: orders answered HTTP 503"),
        "{text}"
    );
    assert!(text.contains("caused by: parent cancelled"), "{text}");
    assert!(text.contains("by `recommendations`"), "{text}");
    assert!(
        text.contains("Err: scope `dashboard` failed (1 failure)"),
        "{text}"
    );
}
