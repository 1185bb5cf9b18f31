//! Procedural macros of `tethered`. Use them through the `tethered` crate,
//! which re-exports them; the macros expand into paths under
//! `::tethered::__private`.
