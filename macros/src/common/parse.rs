//! Tokens to syntax: the function an attribute is on. (The attribute's
//! options are parsed by `options`.)

use proc_macro2::TokenStream;
use syn::{ItemFn, TraitItemFn};

/// The function an attribute is on, or an error naming what it needs.
pub(crate) fn parse_fn(item: TokenStream, attribute: &str) -> syn::Result<ItemFn> {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(item) => Ok(item),
        Err(error) => match syn::parse2::<TraitItemFn>(item) {
            Ok(method) if method.default.is_none() => Err(syn::Error::new_spanned(
                &method.sig,
                format!(
                    "`#[{attribute}]` needs a function body; put it on the method in the `impl` block instead"
                ),
            )),
            _ => Err(syn::Error::new(
                error.span(),
                format!("`#[{attribute}]` goes on an `async fn`: {error}"),
            )),
        },
    }
}
