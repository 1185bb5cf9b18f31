//! A scope's account of its children: which ended how, named, located and
//! timed, in spawn order; failed and cancelled children always, completed
//! ones when the scope keeps a report; bounded.

mod common;

use std::future::pending;
use std::time::Duration;

use common::{EXPECTED, ms, quiet_expected_panics};
use tethered::{CancelKind, KEPT_CHILDREN, Scope, ScopeReport, Supervisor, TaskEnd};
use tokio::time::sleep;

fn end_of(report: &ScopeReport, name: &str) -> &'static str {
    match report
        .child(name)
        .unwrap_or_else(|| panic!("no `{name}` in\n{report}"))
        .end()
    {
        TaskEnd::Completed => "completed",
        TaskEnd::Failed(_) => "failed",
        TaskEnd::Cancelled(_) => "cancelled",
        _ => "other",
    }
}

/// Twenty items fetched side by side; item 7 fails at 70 ms, while items
/// 8 to 20 are still running.
async fn fan_out(scope: &Scope) {
    for item in 1..=20u64 {
        scope.spawn_fallible_named(format!("item-{item}"), async move {
            sleep(ms(10 * item)).await;
            if item == 7 {
                return Err(format!("item {item}: refused"));
            }
            Ok(item)
        });
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_scope_reports_which_children_failed_and_which_were_cancelled_and_why() {
    let error = Scope::builder()
        .name("fan-out")
        .run(fan_out)
        .await
        .unwrap_err();
    let report = error.report().expect("a scope's error has its report");
    assert!(!report.lists_completed());
    // Without `report()`: the failure and the 13 it cancelled, in spawn order.
    let names: Vec<&str> = report
        .children()
        .iter()
        .map(|child| child.name().unwrap())
        .collect();
    let expected: Vec<String> = (7..=20).map(|item| format!("item-{item}")).collect();
    assert_eq!(names, expected);
    assert_eq!(
        (report.completed(), report.failed(), report.cancelled()),
        (0, 1, 13)
    );
    assert_eq!(end_of(report, "item-7"), "failed");
    let TaskEnd::Cancelled(reason) = report.child("item-12").unwrap().end() else {
        unreachable!()
    };
    assert_eq!(reason.kind(), CancelKind::SiblingFailed);
    assert_eq!(reason.origin(), Some("item-7"));
    assert_eq!(report.child("item-12").unwrap().ran_for(), ms(70));
    let text = report.to_string();
    assert!(
        text.starts_with("scope `fan-out` (at ")
            && text.contains("ended after 70ms: 1 failed, 13 cancelled (children that completed are listed when the scope keeps a report)"),
        "{text}"
    );
    assert!(text.contains("\n  task `item-7` (spawned at "), "{text}");
    assert!(
        text.contains("): failed: item 7: refused, after 70ms"),
        "{text}"
    );
    assert!(text.contains("\n  task `item-20` (spawned at "), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_scope_that_keeps_a_report_lists_every_child_in_spawn_order() {
    let error = Scope::builder()
        .name("fan-out")
        .report()
        .run(fan_out)
        .await
        .unwrap_err();
    let report = error.report().unwrap();
    assert!(report.lists_completed());
    assert_eq!(report.children().len(), 20);
    for (index, child) in report.children().iter().enumerate() {
        assert_eq!(child.name(), Some(format!("item-{}", index + 1).as_str()));
    }
    assert_eq!(
        (report.completed(), report.failed(), report.cancelled()),
        (6, 1, 13)
    );
    assert_eq!(end_of(report, "item-3"), "completed");
    assert_eq!(report.child("item-3").unwrap().ran_for(), ms(30));
    assert!(
        report
            .to_string()
            .contains("ended after 70ms: 6 completed, 1 failed, 13 cancelled\n")
    );
}

#[tokio::test(start_paused = true)]
async fn run_reported_gives_the_report_of_a_scope_that_ended_well() {
    let (result, report) = Scope::builder()
        .name("warm-up")
        .run_reported(async |scope| {
            scope.spawn_named("cache", sleep(ms(30)));
            let pool = scope.spawn_named("pool", pending::<()>());
            scope.shield_named("flush", sleep(ms(5)));
            sleep(ms(10)).await;
            pool.cancel("not needed");
            "warm"
        })
        .await;
    assert_eq!(result.unwrap(), "warm");
    assert_eq!(
        (report.completed(), report.failed(), report.cancelled()),
        (2, 0, 1)
    );
    assert_eq!(report.took(), ms(30));
    assert_eq!(end_of(&report, "pool"), "cancelled");
    let TaskEnd::Cancelled(reason) = report.child("pool").unwrap().end() else {
        unreachable!()
    };
    assert_eq!(reason.message(), Some("not needed"));
    assert!(report.child("flush").unwrap().is_shield());
    let text = report.to_string();
    assert!(text.contains("shield `flush` (spawned at "), "{text}");
    assert!(text.contains("): completed in 5ms"), "{text}");
    assert!(
        text.contains("): cancelled: cancelled: not needed (at "),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_child_is_in_the_report_with_its_payload() {
    quiet_expected_panics();
    let error = Scope::run(async |scope| {
        scope.spawn_named("bad", async { panic!("{EXPECTED}: boom") });
    })
    .await
    .unwrap_err();
    let report = error.report().unwrap();
    let TaskEnd::Failed(failure) = report.child("bad").unwrap().end() else {
        panic!("{report}")
    };
    assert!(failure.panic().unwrap().message().contains("boom"));
    assert!(
        report
            .to_string()
            .contains("panicked: expected panic: boom")
    );
}

#[tokio::test(start_paused = true)]
async fn the_account_keeps_the_first_ends_in_detail_and_counts_the_rest() {
    let children = KEPT_CHILDREN as u64 + 44;
    let (result, report) = Scope::builder()
        .run_reported(async |scope| {
            for n in 0..children {
                scope.spawn(sleep(ms(n)));
            }
        })
        .await;
    result.unwrap();
    assert_eq!(report.children().len(), KEPT_CHILDREN);
    assert_eq!(report.not_kept(), 44);
    assert_eq!(report.completed(), children);
    assert!(
        report.to_string().ends_with(
            "\n  … and 44 more, not kept in detail: 44 completed, 0 failed, 0 cancelled"
        ),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_supervisors_children_are_in_its_own_report_not_in_its_scopes() {
    let (result, report) = Scope::builder()
        .run_reported(async |_| {
            Supervisor::builder()
                .run(async |sv| {
                    sv.spawn("job", async { Err::<(), _>("failed") }).unwrap();
                    sleep(ms(1)).await;
                })
                .await
                .unwrap();
        })
        .await;
    result.unwrap();
    assert!(report.children().is_empty(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_scope_reports_its_cancelled_children_with_the_reason() {
    let error = Scope::builder()
        .name("batch")
        .timeout(Duration::from_millis(50))
        .run(async |scope| {
            scope.spawn_named("slow", pending::<()>());
            scope.spawn_named("quick", sleep(ms(10)));
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    let report = error.report().unwrap();
    assert_eq!(report.children().len(), 1, "{report}");
    let TaskEnd::Cancelled(reason) = report.child("slow").unwrap().end() else {
        unreachable!()
    };
    assert_eq!(reason.root().kind(), CancelKind::Timeout);
}
