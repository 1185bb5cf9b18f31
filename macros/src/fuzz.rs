//! Robustness: the macro pipelines are plain functions over token streams,
//! so random and mutated inputs can be thrown at them by the thousand. Each
//! must come back as an expansion or as spanned errors, never as a panic
//! (a proc-macro panic is the one message a user can do nothing with).

use std::str::FromStr;

use proc_macro2::TokenStream;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use crate::entry::{self, Entry};
use crate::{periodic, scoped, supervise};

/// Pieces of attribute arguments: the real keys and values, near misses,
/// and junk.
fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "on_exit",
            "timeout",
            "cleanup_timeout",
            "grace",
            "cancel_timeout",
            "flavor",
            "worker_threads",
            "start_paused",
            "timout",
            "every",
            "overlap",
            "on_error",
            "on_stop",
            "continue",
            "end",
            "stop",
            "join",
            "cancel",
            "abort",
            "true",
            "false",
            "async",
            "fn",
            "self",
            "r#type",
            "_",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "=", ",", ":", "::", "!", "-", ".", ";", "..", "=>", "|", "&", "#", "'a",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "\"5s\"",
            "\"0s\"",
            "\"-1s\"",
            "\"5 parsecs\"",
            "\"\"",
            "\"1h 30m\"",
            "\"current_thread\"",
            "\"multi_thread\"",
            "\"x\"",
            "0",
            "1",
            "18446744073709551616",
            "-3",
            "2.5",
            "'c'",
            "b\"raw\"",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// A balanced token sequence: atoms and nested groups.
fn tokens() -> impl Strategy<Value = String> {
    let leaf = prop::collection::vec(atom(), 0..8).prop_map(|atoms| atoms.join(" "));
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop::collection::vec(
            prop_oneof![
                atom(),
                inner.clone().prop_map(|s| format!("({s})")),
                inner.clone().prop_map(|s| format!("[{s}]")),
                inner.prop_map(|s| format!("{{{s}}}")),
            ],
            0..8,
        )
        .prop_map(|parts| parts.join(" "))
    })
}

/// A valid argument list, then randomly damaged: tokens dropped or repeated.
fn mutated_arguments() -> impl Strategy<Value = String> {
    mutated("name = \"fetch\", on_exit = cancel, timeout = \"5s\", cleanup_timeout = \"1s\"")
}

/// `valid` (tokens separated by spaces), randomly damaged: tokens dropped,
/// repeated or moved to the end.
fn mutated(valid: &str) -> impl Strategy<Value = String> + use<> {
    let pieces: Vec<String> = valid.split(' ').map(str::to_owned).collect();
    prop::collection::vec((0..pieces.len(), 0u8..3), 0..6).prop_map(move |edits| {
        let mut pieces = pieces.clone();
        for (index, edit) in edits {
            let index = index.min(pieces.len().saturating_sub(1));
            if pieces.is_empty() {
                break;
            }
            match edit {
                0 => {
                    pieces.remove(index);
                }
                1 => {
                    let copy = pieces[index].clone();
                    pieces.insert(index, copy);
                }
                _ => {
                    let last = pieces.len() - 1;
                    pieces.swap(index, last);
                }
            }
        }
        pieces.join(" ")
    })
}

/// Pieces of `supervise! { … }`: its words, near misses, and junk.
fn supervise_atom() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "strategy",
            "intensity",
            "shutdown",
            "seed",
            "child",
            "body",
            "within",
            "grace",
            "then",
            "cancel",
            "permanent",
            "transient",
            "temporary",
            "backoff",
            "none",
            "factor",
            "jitter",
            "one_for_one",
            "rest_for_one",
            "OneForAll",
            "strategi",
            "chlid",
            "move",
            "async",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            ":", ",", "=>", "..", "..=", "|", "||", "|sv|", "|_|", "-", "::", "<", ">", ".",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "\"svc\"",
            "\"5s\"",
            "\"0s\"",
            "\"5 parsecs\"",
            "\"\"",
            "0",
            "1",
            "4294967296",
            "18446744073709551616",
            "0.1",
            "2.5",
            "1e400",
            "1.0e-400",
            "'c'",
        ])
        .prop_map(str::to_owned),
        atom(),
    ]
}

/// A balanced `supervise!` input: its atoms and nested groups.
fn supervise_tokens() -> impl Strategy<Value = String> {
    let leaf = prop::collection::vec(supervise_atom(), 0..12).prop_map(|atoms| atoms.join(" "));
    leaf.prop_recursive(3, 32, 8, |inner| {
        prop::collection::vec(
            prop_oneof![
                supervise_atom(),
                inner.clone().prop_map(|s| format!("({s})")),
                inner.prop_map(|s| format!("{{{s}}}")),
            ],
            0..12,
        )
        .prop_map(|parts| parts.join(" "))
    })
}

/// Every entry of `supervise!`, one token per piece.
const SUPERVISE: &str = "name : \"svc\" , strategy : one_for_all , intensity : 5 within \"10s\" , \
    shutdown : grace \"5s\" then cancel \"10s\" , seed : 42 , \
    child \"a\" ( permanent , backoff \"100ms\" .. \"5s\" , factor 2 , jitter 0.1 ) => work ( db . clone ( ) ) , \
    child \"b\" ( backoff none ) => b ( ) , child \"c\" => c :: < A , B > ( ) , \
    body | sv | { serve ( sv ) . await } ,";

/// The expansion of `supervise!` is an expression, whatever the input.
fn check_supervise(input: TokenStream) {
    let output = supervise::expand(input);
    assert!(
        syn::parse2::<syn::Expr>(output.clone()).is_ok(),
        "not an expression: {output}"
    );
}

fn stream(text: &str) -> Option<TokenStream> {
    TokenStream::from_str(text).ok()
}

/// The expansion is tokens, and is either free of errors or carries them as
/// `compile_error!`s.
fn check(output: TokenStream) {
    let _printed = output.to_string();
}

/// `cases` cases from a fixed seed, so that every run (and CI) tries the
/// same inputs; `PROPTEST_RNG_SEED=<n>` explores others.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = match default.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x7e7e_7e7e),
        chosen => chosen,
    };
    ProptestConfig {
        cases,
        rng_seed,
        ..default
    }
}

const ITEM: &str =
    "async fn f(x: u32) -> Result<u32, E> { let h = spawn!(g(x)); h.join().await; Ok(1) }";
const MAIN: &str = "async fn main() { spawn!(work()); }";
const PERIODIC: &str = "async fn tick(&self, db: Db) -> Result<(), E> { self.x(db)?; Ok(()) }";

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn random_attribute_arguments_never_panic(args in tokens()) {
        let Some(args) = stream(&args) else { return Ok(()) };
        check(scoped::expand(args.clone(), stream(ITEM).unwrap()));
        check(entry::expand(Entry::Main, args.clone(), stream(MAIN).unwrap()));
        check(entry::expand(Entry::Test, args.clone(), stream(MAIN).unwrap()));
        check(periodic::expand(args, stream(PERIODIC).unwrap()));
    }

    #[test]
    fn damaged_arguments_never_panic(args in mutated_arguments()) {
        let Some(args) = stream(&args) else { return Ok(()) };
        check(scoped::expand(args, stream(ITEM).unwrap()));
    }

    #[test]
    fn random_items_and_bodies_never_panic(body in tokens(), head in prop::sample::select(vec![
        "async fn f()", "fn f()", "const fn f()", "async fn f(self)", "async fn f() -> Result<(), E>",
        "async fn f() -> u32", "async fn f() -> impl Sized", "",
    ])) {
        let item = format!("{head} {{ {body} }}");
        let Some(item) = stream(&item) else { return Ok(()) };
        check(scoped::expand(TokenStream::new(), item.clone()));
        check(periodic::expand(stream("every = \"1s\"").unwrap(), item.clone()));
        check(entry::expand(Entry::Test, TokenStream::new(), item));
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn random_supervise_inputs_never_panic(input in supervise_tokens()) {
        let Some(input) = stream(&input) else { return Ok(()) };
        check_supervise(input);
    }

    #[test]
    fn damaged_supervise_inputs_never_panic(input in mutated(SUPERVISE)) {
        let Some(input) = stream(&input) else { return Ok(()) };
        check_supervise(input);
    }
}

/// A damaged expression in the parentheses of a run-time duration once
/// leaked into the expansion unparsed, so the output was not an expression.
#[test]
fn damaged_runtime_duration_is_an_error_not_broken_output() {
    let input = "shutdown : grace \"5s\" then cancel ( , seed : 42 child \"a\" => a ( ) ) , \
        child \"c\" => c ( )";
    check_supervise(stream(input).unwrap());
    let output = supervise::expand(stream(input).unwrap());
    assert!(
        output.to_string().contains("in the parentheses"),
        "{output}"
    );
}
