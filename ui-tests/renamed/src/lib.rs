//! Holds no code: the tests in `tests/` use tethered's macros through the
//! name `tt`, which this crate's Cargo.toml gives it, with `crate = tt`
//! (and `tt::supervise!`, which needs no option).
