//! Deterministic pseudo-randomness for jitter: seeded, so tests can replay it.

/// SplitMix64: a small, well-distributed mixing function (public domain
/// constants), enough for spreading timers apart, not for anything secret.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A number in `[0, 1]` drawn from `seed`.
pub(crate) fn unit(seed: u64) -> f64 {
    // The top 53 bits fill an f64's mantissa exactly.
    (splitmix64(seed) >> 11) as f64 / ((1u64 << 53) - 1) as f64
}
