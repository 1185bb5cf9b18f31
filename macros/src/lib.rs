//! Procedural macros of `tethered`. Use them through the `tethered` crate,
//! which re-exports them; the code they expand to calls only
//! `::tethered::__private` and `::core` paths.
//!
//! Each macro lives in a folder of its own with the same three stages:
//! `parse` (tokens to syntax), `model` (checked, with every mistake
//! collected), `expand` (a valid model to tokens, which cannot fail).

mod common;
mod entry;
#[cfg(test)]
mod fuzz;
mod periodic;
mod scoped;
mod supervise;

use proc_macro::TokenStream;

/// Runs an `async fn`'s body in a new scope, child of the caller's.
///
/// See `tethered::scoped` for the documentation.
#[proc_macro_attribute]
pub fn scoped(args: TokenStream, item: TokenStream) -> TokenStream {
    scoped::expand(args.into(), item.into()).into()
}

/// Turns an `async fn` into a schedule that runs its body once per period.
///
/// See `tethered::periodic` for the documentation.
#[proc_macro_attribute]
pub fn periodic(args: TokenStream, item: TokenStream) -> TokenStream {
    periodic::expand(args.into(), item.into()).into()
}

/// `#[tokio::main]` plus a root scope and signal handling.
///
/// See `tethered::main` for the documentation.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Entry::Main, args.into(), item.into()).into()
}

/// `#[tokio::test]` plus a root scope.
///
/// See `tethered::test` for the documentation.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Entry::Test, args.into(), item.into()).into()
}

/// A supervisor, its restartable children and its body, run as one
/// expression.
///
/// See `tethered::supervise` for the documentation. `tethered::supervise!`
/// calls this with `crate = $crate;` before the entries, for the path of
/// the runtime crate; without it, the expansion names `::tethered`.
#[proc_macro]
pub fn supervise(input: TokenStream) -> TokenStream {
    supervise::expand(input.into()).into()
}
