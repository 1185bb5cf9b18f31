//! Pieces every macro shares: the error collector, option parsing,
//! durations, and the analysis of scoped bodies.

pub(crate) mod body;
pub(crate) mod duration;
mod errors;
pub(crate) mod options;

pub(crate) use errors::Errors;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{ItemFn, Signature};

/// What to emit when the item cannot be expanded at all (not an async fn, a
/// const fn…): the errors, plus the signature with a body that type-checks
/// as anything, so that callers keep compiling and the IDE keeps working
/// without a cascade of follow-on errors. `const` is dropped (it is the
/// mistake, or clashes with `async`); for an `entry` point (`main`, a test)
/// `async` and the arguments are dropped too, as the expansion would.
pub(crate) fn fallback(item: &ItemFn, error: syn::Error, entry: bool) -> TokenStream {
    let mut tokens = error.into_compile_error();
    let ItemFn {
        attrs, vis, sig, ..
    } = item;
    let Signature {
        asyncness,
        unsafety,
        abi,
        fn_token,
        ident,
        generics,
        inputs,
        variadic,
        output,
        ..
    } = sig;
    let where_clause = &generics.where_clause;
    let asyncness = asyncness.filter(|_| !entry);
    let inputs = (!entry).then_some(inputs);
    let variadic = (!entry).then_some(variadic);
    quote::quote! {
        #(#attrs)*
        #[allow(unused_variables, unreachable_code, clippy::diverging_sub_expression)]
        #vis #asyncness #unsafety #abi #fn_token #ident #generics (#inputs #variadic) #output #where_clause {
            loop {}
        }
    }
    .to_tokens(&mut tokens);
    tokens
}
