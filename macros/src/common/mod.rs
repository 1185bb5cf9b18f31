//! Pieces every macro shares: the error collector, option parsing,
//! durations, and the analysis of scoped bodies.

mod awaits;
pub(crate) mod body;
mod diverging;
pub(crate) mod duration;
mod errors;
pub(crate) mod options;
mod parse;
mod support;

pub(crate) use errors::Errors;
pub(crate) use support::Support;

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{AttrStyle, Attribute, ItemFn, Signature};

/// Checks that `item` is an `async fn` and not a `const fn`, recording an
/// error for each that is not so; returns whether the fn can be expanded.
/// `why` says why the attribute needs `async` ("a scope is awaited").
pub(crate) fn check_async_fn(item: &ItemFn, attribute: &str, why: &str, errors: &Errors) -> bool {
    let mut ok = true;
    if let Some(constness) = &item.sig.constness {
        errors.error_spanned_by(
            constness,
            format!("`#[{attribute}]` cannot go on a `const fn`; remove `const`"),
        );
        ok = false;
    }
    if item.sig.asyncness.is_none() {
        errors.error_spanned_by(
            item.sig.fn_token,
            format!("`#[{attribute}]` goes on an `async fn` ({why}); add `async`"),
        );
        ok = false;
    }
    ok
}

/// Every attribute's pipeline: parse the fn, parse the options, build the
/// checked model (collecting every mistake), expand it.
///
/// The output is the expansion when the model is valid; the expansion plus
/// the errors when the model could be built despite them (the body was
/// rewritten, so only the real mistakes are reported, not what they would
/// cascade into); the fallback otherwise. Options that do not parse still
/// leave the fn in place for its callers. `entry` is for `main` and tests,
/// whose fallback is a plain fn.
pub(crate) fn expand_attribute<M>(
    attribute: &str,
    entry: bool,
    args: TokenStream,
    item: TokenStream,
    model: impl FnOnce(&[options::RawOption], ItemFn, &Errors) -> Option<M>,
    expand: impl FnOnce(M) -> TokenStream,
) -> TokenStream {
    let item = match parse::parse_fn(item, attribute) {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let options = match options::parse(args) {
        Ok(options) => options,
        Err(error) => return fallback(&item, error, entry),
    };
    let errors = Errors::new();
    let model = model(&options, item.clone(), &errors);
    match (model, errors.finish()) {
        (Some(model), Ok(())) => expand(model),
        (Some(model), Err(error)) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(expand(model));
            tokens
        }
        (None, Err(error)) => fallback(&item, error, entry),
        // A model is only withheld with an error to say why.
        (None, Ok(())) => TokenStream::new(),
    }
}

/// What to emit when the item cannot be expanded at all (not an async fn, a
/// const fn…): the errors, plus the signature with a body that type-checks
/// as anything, so that callers keep compiling and the IDE keeps working
/// without a cascade of follow-on errors. `const` is dropped (it is the
/// mistake, or clashes with `async`); for an `entry` point (`main`, a test)
/// `async` and the arguments are dropped too, as the expansion would.
fn fallback(item: &ItemFn, error: syn::Error, entry: bool) -> TokenStream {
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
    let (outer, inner) = split_attributes(attrs);
    quote::quote! {
        #(#outer)*
        #[allow(unused_variables, unreachable_code, clippy::diverging_sub_expression)]
        #vis #asyncness #unsafety #abi #fn_token #ident #generics (#inputs #variadic) #output #where_clause {
            #(#inner)*
            loop {}
        }
    }
    .to_tokens(&mut tokens);
    tokens
}

/// A fn's attributes, split as syn keeps them together: the outer ones
/// (`#[inline]`) go on the fn the expansion emits, the inner ones
/// (`#![allow(…)]` at the top of the body) at the top of its body.
pub(crate) fn split_attributes(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<&Attribute>) {
    attrs
        .iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Outer))
}

/// Whether `ident` appears anywhere in `tokens`, macro arguments included.
pub(crate) fn mentions(tokens: &TokenStream, ident: &Ident) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(found) => found == *ident,
        TokenTree::Group(group) => mentions(&group.stream(), ident),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn inner_attributes_stay_in_the_body_of_the_fallback() {
        let item = syn::parse2::<ItemFn>(quote! {
            #[inline]
            fn run() {
                #![allow(unused_mut)]
            }
        })
        .unwrap();
        let error = syn::Error::new(proc_macro2::Span::call_site(), "mistake");
        let tokens = fallback(&item, error, false).to_string();
        let (before, body) = tokens.split_once("fn run").unwrap();
        assert!(before.contains("# [inline]"), "{tokens}");
        assert!(!before.contains("# !"), "{tokens}");
        assert!(body.contains("# ! [allow (unused_mut)]"), "{tokens}");
    }
}
