//! `#[scoped]`: an `async fn` whose body runs in a new scope.

mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::common::expand_attribute;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute(
        "scoped",
        false,
        args,
        item,
        model::ScopedFn::new,
        expand::expand,
    )
}
