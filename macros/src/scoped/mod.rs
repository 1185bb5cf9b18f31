//! `#[scoped]`: an `async fn` whose body runs in a new scope.

mod expand;
mod model;
mod parse;

pub(crate) use parse::parse_fn;

use proc_macro2::TokenStream;

use crate::common::{Errors, emit, fallback, options};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match parse::parse_fn(item, "scoped") {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    // Options that do not parse still leave the fn in place for its callers.
    let options = match options::parse(args) {
        Ok(options) => options,
        Err(error) => return fallback(&item, error, false),
    };
    let errors = Errors::new();
    let model = model::ScopedFn::new(&options, item.clone(), &errors);
    emit(model, errors, &item, false, expand::expand)
}
