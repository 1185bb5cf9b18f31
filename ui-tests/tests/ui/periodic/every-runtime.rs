use std::time::Duration;

use tethered::periodic;

// A number is not a duration: say the unit, or compute one in parentheses.
#[periodic(every = 5)]
async fn bare_number() {}

// The expression must be a `Duration`.
#[periodic(every = (seconds * 2))]
async fn not_a_duration(seconds: u64) {}

// Fine: a `Duration` computed from an argument.
#[periodic(every = (period / 2), first = after)]
async fn half(period: Duration) {}

fn main() {}
