//! Compile-time behaviour of tethered, pinned with trybuild.
//!
//! `tests/ui/<topic>/<mistake>.rs` must fail to compile with exactly the
//! error in the `.stderr` beside it; `tests/pass/*.rs` must compile and run.
//! The `.stderr` files are valid for the toolchain pinned in
//! `rust-toolchain.toml`; after changing it, regenerate them with
//! `TRYBUILD=overwrite cargo test -p tethered-ui-tests` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/**/*.rs");
    t.pass("tests/pass/*.rs");
}
