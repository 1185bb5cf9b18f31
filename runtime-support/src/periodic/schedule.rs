//! When each tick is due: `base + k·period + jitter(k)`, and what happens to
//! ticks that were missed because the executor was busy.

use std::time::Duration;

use tokio::time::Instant;

use super::Missed;
use crate::deadline;
use crate::random::splitmix64;

/// How overdue a tick must be to count as missed. Timers fire up to a
/// millisecond or so late (tokio's resolution), so with no tolerance a short
/// period would "miss" ticks that merely fired on the next timer turn; tokio's
/// own `Interval` uses the same 5 ms.
pub(super) const MISSED_TOLERANCE: Duration = Duration::from_millis(5);

/// The tick sequence of one schedule. Pure arithmetic over instants, so it
/// has no drift: tick `k` is due at `base + k·period (+ jitter)` whatever
/// the runs take, until a `Missed::Delay` moves the base.
///
/// Tick indices are `u64` and the products are computed in 128-bit
/// nanoseconds: a schedule goes on past any count of ticks, and a tick too
/// far away to represent is never due (see [`deadline`]).
#[derive(Debug)]
pub(super) struct Schedule {
    base: Instant,
    period: Duration,
    /// Index of the next tick, counted from `base`.
    next: u64,
    /// Number of the next tick since the schedule started (for reasons and
    /// names; unlike `next`, never reset).
    number: u64,
    jitter: Option<Jitter>,
    missed: Missed,
}

impl Schedule {
    pub(super) fn new(
        start: Instant,
        period: Duration,
        first_after: bool,
        jitter: Option<Jitter>,
        missed: Missed,
    ) -> Self {
        Schedule {
            base: start,
            // Never zero: the catch-up below divides by it.
            period: period.max(Duration::from_nanos(1)),
            next: u64::from(first_after),
            number: 0,
            jitter,
            missed,
        }
    }

    /// When the next tick is due.
    pub(super) fn due(&self) -> Instant {
        deadline::after(self.base, self.offset(self.next))
    }

    /// How long after `base` tick `index` is due, jitter included
    /// (saturating: far enough is never).
    fn offset(&self, index: u64) -> Duration {
        let number = self.number.saturating_add(index.saturating_sub(self.next));
        let jitter = self
            .jitter
            .as_ref()
            .map_or(Duration::ZERO, |jitter| jitter.at(number));
        periods(self.period, index).saturating_add(jitter)
    }

    /// The number of the tick that is due (counting every tick, missed ones
    /// included).
    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// Moves past the tick that just fired at `now`; returns how many ticks
    /// were missed (dropped) on the way, per the `Missed` policy.
    pub(super) fn advance(&mut self, now: Instant) -> u64 {
        match self.missed {
            Missed::Burst => {
                self.step(1);
                0
            }
            Missed::Skip => {
                self.step(1);
                // Missed: the ticks due more than the tolerance before
                // `now`, i.e. those whose offset is below `overdue`.
                let Some(overdue) = now
                    .saturating_duration_since(self.base)
                    .checked_sub(MISSED_TOLERANCE)
                else {
                    return 0;
                };
                // On time, the usual case: the next tick is not missed.
                if self.offset(self.next) >= overdue {
                    return 0;
                }
                // Every tick before `overdue / period` is due before
                // `overdue` even with its jitter (less than a period): the
                // first tick kept is at most two further on. Computed, not
                // stepped to: a stall of 50 days of a 1 ms schedule is over
                // four billion ticks.
                let whole = overdue.as_nanos() / self.period.as_nanos();
                let mut kept = u64::try_from(whole).unwrap_or(u64::MAX).max(self.next);
                while kept < u64::MAX && self.offset(kept) < overdue {
                    kept += 1;
                }
                let missed = kept - self.next;
                self.step(missed);
                missed
            }
            Missed::Delay => {
                // The next tick is one period after this one actually fired:
                // the schedule moves with the delay instead of catching up.
                let late = now.saturating_duration_since(self.due());
                self.step(1);
                if late > MISSED_TOLERANCE {
                    // The tick that fired is tick 0 of the moved grid.
                    self.base = now;
                    self.next = 1;
                }
                0
            }
        }
    }

    fn step(&mut self, ticks: u64) {
        self.next = self.next.saturating_add(ticks);
        self.number = self.number.saturating_add(ticks);
    }
}

/// `period × ticks`, saturating at `Duration::MAX`.
fn periods(period: Duration, ticks: u64) -> Duration {
    // In 64 bits when it fits (up to 584 years), the case at every tick.
    let short = u64::try_from(period.as_nanos())
        .ok()
        .and_then(|nanos| nanos.checked_mul(ticks));
    if let Some(nanos) = short {
        return Duration::from_nanos(nanos);
    }
    let Some(nanos) = period.as_nanos().checked_mul(u128::from(ticks)) else {
        return Duration::MAX;
    };
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below a billion: it fits in a `u32`.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// Uniform jitter in `[0, max]` per tick, from a seeded generator: the same
/// seed gives the same offsets, so tests are deterministic.
#[derive(Debug, Clone)]
pub(super) struct Jitter {
    max: Duration,
    seed: u64,
}

impl Jitter {
    pub(super) fn new(max: Duration, seed: u64) -> Self {
        Jitter { max, seed }
    }

    /// The offset of tick `number`: a pure function of the seed and the tick,
    /// so `due()` can be asked any number of times.
    fn at(&self, number: u64) -> Duration {
        let nanos = u64::try_from(self.max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        let random = splitmix64(self.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Uniform in `[0, nanos]`; every value when that is all of them.
        Duration::from_nanos(nanos.checked_add(1).map_or(random, |span| random % span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn ticks_do_not_drift() {
        let start = Instant::now();
        let mut schedule = Schedule::new(start, secs(5), false, None, Missed::Skip);
        for k in 0..10_000u32 {
            let due = schedule.due();
            assert_eq!(due, start + secs(5) * k);
            // Fired late, but not a whole period late: nothing is missed.
            assert_eq!(schedule.advance(due + Duration::from_millis(700)), 0);
        }
    }

    #[test]
    fn a_tick_late_by_less_than_the_tolerance_is_not_missed() {
        let start = Instant::now();
        let period = Duration::from_millis(1);
        let mut skip = Schedule::new(start, period, false, None, Missed::Skip);
        // Tick 0 fires 3ms late: ticks 1 and 2 are overdue, but only by 2ms
        // and 1ms: they still fire, right away.
        assert_eq!(skip.advance(start + Duration::from_millis(3)), 0);
        assert_eq!(skip.due(), start + period);
        let mut delay = Schedule::new(start, period, false, None, Missed::Delay);
        delay.advance(start + Duration::from_millis(3));
        assert_eq!(delay.due(), start + period, "the grid stays");
    }

    #[test]
    fn first_after_starts_one_period_in() {
        let start = Instant::now();
        let schedule = Schedule::new(start, secs(5), true, None, Missed::Skip);
        assert_eq!(schedule.due(), start + secs(5));
    }

    #[test]
    fn missed_ticks_per_policy() {
        let start = Instant::now();
        // Tick 0 fires 12s late: ticks at 5s and 10s were missed.
        let late = start + secs(12);

        let mut skip = Schedule::new(start, secs(5), false, None, Missed::Skip);
        assert_eq!(skip.advance(late), 2);
        assert_eq!(skip.due(), start + secs(15), "back on the grid");
        assert_eq!(skip.number(), 3);

        let mut burst = Schedule::new(start, secs(5), false, None, Missed::Burst);
        assert_eq!(burst.advance(late), 0);
        assert_eq!(burst.due(), start + secs(5), "each missed tick still fires");

        let mut delay = Schedule::new(start, secs(5), false, None, Missed::Delay);
        assert_eq!(delay.advance(late), 0);
        assert_eq!(delay.due(), late + secs(5), "the grid moved with the delay");
    }

    #[test]
    fn tick_indices_past_u32_max_and_periods_past_any_instant() {
        let start = Instant::now();
        let period = Duration::from_millis(1);
        let mut schedule = Schedule::new(start, period, false, None, Missed::Skip);
        // 50 days late: computed at once, past `u32::MAX` ticks.
        let late = start + Duration::from_secs(50 * 86_400);
        // Ticks 1 to 4,319,999,994 are missed; the one due exactly the
        // tolerance (5 ms) before `late` is not.
        let missed = schedule.advance(late);
        assert_eq!(missed, 4_320_000_000 - 6);
        assert_eq!(schedule.number(), 4_320_000_000 - 5);
        assert_eq!(schedule.due(), late - MISSED_TOLERANCE);
        // A period no instant can be that far from: the next tick is never.
        let mut never = Schedule::new(start, Duration::MAX, false, None, Missed::Skip);
        assert_eq!(never.due(), start);
        assert_eq!(never.advance(start), 0);
        assert_eq!(never.due(), deadline::never(start));
        let mut delayed = Schedule::new(start, Duration::MAX, false, None, Missed::Delay);
        delayed.advance(late);
        assert_eq!(delayed.due(), deadline::never(late));
    }

    #[test]
    fn the_largest_jitter_stays_within_its_bound() {
        let jitter = Jitter::new(Duration::MAX, 3);
        for number in 0..1_000 {
            assert!(jitter.at(number) <= Duration::MAX);
        }
        let start = Instant::now();
        let schedule = Schedule::new(start, Duration::MAX, true, Some(jitter), Missed::Burst);
        assert_eq!(schedule.due(), deadline::never(start));
    }

    #[test]
    fn jitter_is_bounded_and_seeded() {
        let start = Instant::now();
        let jitter = || Some(Jitter::new(Duration::from_millis(500), 7));
        let mut a = Schedule::new(start, secs(5), false, jitter(), Missed::Burst);
        let mut b = Schedule::new(start, secs(5), false, jitter(), Missed::Burst);
        let mut offsets = Vec::new();
        for k in 0..1_000u32 {
            let due = a.due();
            assert_eq!(due, b.due(), "same seed, same ticks");
            let offset = due - (start + secs(5) * k);
            assert!(offset <= Duration::from_millis(500));
            offsets.push(offset);
            a.advance(due);
            b.advance(due);
        }
        offsets.sort();
        assert!(offsets[100] < Duration::from_millis(100), "spread low");
        assert!(offsets[900] > Duration::from_millis(400), "spread high");
    }
}
