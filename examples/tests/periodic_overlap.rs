//! The overlap example (`examples/periodic_overlap.rs`) on paused time: a
//! tick every 200 ms, runs of 490 ms, a stop at 3.1 s, so ticks 0 to 15
//! fired (at 0, 200, …, 3000 ms). Every count is exact.

use std::time::Duration;

use tethered_examples::periodic_overlap::{self, POLICIES, Report, Row};

/// `(ticks, started, completed, skipped, cancelled_by_overlap, max_concurrent)`.
fn counts(row: &Row) -> (u64, u64, u64, u64, u64, u64) {
    let s = row.stats;
    (
        s.ticks,
        s.started,
        s.completed,
        s.skipped,
        s.cancelled_by_overlap,
        s.max_concurrent,
    )
}

fn row<'r>(report: &'r Report, policy: &str) -> &'r Row {
    report
        .rows
        .iter()
        .find(|row| row.policy == policy)
        .unwrap_or_else(|| panic!("no row for `{policy}`:\n{report}"))
}

#[tokio::test(start_paused = true)]
async fn each_policy_keeps_the_slow_runs_bounded() {
    let report = periodic_overlap::run().await.unwrap();
    println!("{report}");

    let policies: Vec<_> = report.rows.iter().map(|row| row.policy).collect();
    assert_eq!(policies, POLICIES.map(|(policy, _)| policy));
    assert_eq!(report.stopped_at, Duration::from_millis(3_100));
    // The runs started at 3000 ms (skip, cancel, concurrent) ended last.
    assert_eq!(report.ended_at, Duration::from_millis(3_490));

    // Runs start at ticks 0, 3, 6, 9, 12, 15; the others are skipped. The
    // run of tick 15 was going at the stop and completed.
    assert_eq!(counts(row(&report, "skip")), (16, 6, 6, 10, 0, 1));

    // Every tick replaces the run before it; only the last one, which no
    // tick replaced after the stop, completed.
    assert_eq!(counts(row(&report, "cancel")), (16, 16, 1, 0, 15, 1));

    // Runs go back to back, at 0, 490, 980, …, 2940 ms: 7 of them. Of the
    // other 9 ticks, 8 found a tick already waiting, and the one that fired
    // at 3000 ms was waiting at the stop.
    let queue = row(&report, "queue");
    assert_eq!(counts(queue), (16, 7, 7, 8, 0, 1));
    assert_eq!(queue.forgotten(), 1);

    // Two ticks out of three start a run: ticks 2, 5, 8, 11 and 14 found two
    // runs going.
    assert_eq!(counts(row(&report, "concurrent(2)")), (16, 11, 11, 5, 0, 2));

    for row in &report.rows {
        let s = row.stats;
        // Every run started was accounted for by the time the schedule
        // returned; nothing failed, nothing timed out.
        assert_eq!(s.started, s.completed + s.cancelled_by_overlap, "{report}");
        assert_eq!((s.failed, s.timed_out, s.missed), (0, 0, 0), "{report}");
        if row.policy != "queue" {
            assert_eq!(row.forgotten(), 0, "{report}");
        }
    }

    let table = report.to_string();
    let lines: Vec<_> = table.lines().collect();
    assert_eq!(
        lines[0],
        "a tick every 200 ms, each run takes 490 ms; stopped at 3100 ms, \
         the last run ended at 3490 ms"
    );
    assert_eq!(
        lines[2..7],
        [
            "policy         ticks  started  completed  skipped  cancelled_by_overlap  max_concurrent",
            "skip              16        6          6       10                     0               1",
            "cancel            16       16          1        0                    15               1",
            "queue             16        7          7        8                     0               1",
            "concurrent(2)     16       11         11        5                     0               2",
        ],
        "{table}"
    );
    assert_eq!(
        lines.last(),
        Some(
            &"queue: 1 tick was waiting for its run when the stop came; \
              a stop forgets it (ticks = started + skipped + 1)"
        )
    );
}
