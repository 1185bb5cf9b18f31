//! When each tick is due: `base + k·period + jitter(k)`, and what happens to
//! ticks that were missed because the executor was busy.

use std::time::Duration;

use tokio::time::Instant;

use super::Missed;
use crate::random::splitmix64;

/// How overdue a tick must be to count as missed. Timers fire up to a
/// millisecond or so late (tokio's resolution), so with no tolerance a short
/// period would "miss" ticks that merely fired on the next timer turn; tokio's
/// own `Interval` uses the same 5 ms.
pub(super) const MISSED_TOLERANCE: Duration = Duration::from_millis(5);

/// The tick sequence of one schedule. Pure arithmetic over instants, so it
/// has no drift: tick `k` is due at `base + k·period (+ jitter)` whatever
/// the runs take, until a `Missed::Delay` moves the base.
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
            period,
            next: u64::from(first_after),
            number: 0,
            jitter,
            missed,
        }
    }

    /// When the next tick is due.
    pub(super) fn due(&self) -> Instant {
        let offset = self
            .jitter
            .as_ref()
            .map_or(Duration::ZERO, |jitter| jitter.at(self.number));
        self.base + self.period.saturating_mul(saturate(self.next)) + offset
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
                let mut missed = 0;
                while self.due() + MISSED_TOLERANCE < now {
                    self.step(1);
                    missed += 1;
                }
                missed
            }
            Missed::Delay => {
                // The next tick is one period after this one actually fired:
                // the schedule moves with the delay instead of catching up.
                let late = now.saturating_duration_since(self.due());
                self.step(1);
                if late > MISSED_TOLERANCE {
                    self.base = now - self.period.saturating_mul(saturate(self.next - 1));
                }
                0
            }
        }
    }

    fn step(&mut self, ticks: u64) {
        self.next += ticks;
        self.number += ticks;
    }
}

fn saturate(ticks: u64) -> u32 {
    u32::try_from(ticks).unwrap_or(u32::MAX)
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
        Duration::from_nanos(random % (nanos + 1))
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
