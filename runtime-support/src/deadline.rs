//! Deadlines from durations of any size.
//!
//! Every duration tethered is given (a scope's timeout, a supervisor's
//! grace, a backoff, a period) may be as large as `Duration::MAX`, and
//! `Instant + Duration` panics when the sum cannot be represented. A
//! deadline that far away is "never": it is placed in the far future
//! instead, where no timer will reach it.

use std::time::Duration;

use tokio::time::Instant;

/// Thirty years: a deadline this far away is never reached (tokio takes the
/// same for its own "never").
pub(crate) const NEVER: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `start + duration`, or thirty years after `start` when `duration` is
/// longer than that.
pub(crate) fn after(start: Instant, duration: Duration) -> Instant {
    // An instant thirty years from one in a running program is always
    // representable.
    start + duration.min(NEVER)
}

/// A deadline that is never reached.
pub(crate) fn never(start: Instant) -> Instant {
    after(start, Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_too_far_to_represent_is_the_far_future() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after(now, Duration::MAX), now + NEVER);
        assert_eq!(never(now), now + NEVER);
    }
}
