//! `#[scoped]`: an `async fn` whose body runs in a new scope.

mod expand;
mod model;
mod parse;

pub(crate) use parse::parse_fn;

use proc_macro2::TokenStream;

use crate::common::{Errors, fallback};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let (options, item) = match parse::parse(args, item) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_compile_error(),
    };
    let errors = Errors::new();
    let model = model::ScopedFn::new(&options, item.clone(), &errors);
    match (model, errors.finish()) {
        (Some(model), Ok(())) => expand::expand(model),
        // The body could be rewritten: emit it with the errors, so that only
        // the real mistakes are reported, not what they would cascade into.
        (Some(model), Err(error)) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(expand::expand(model));
            tokens
        }
        (None, Err(error)) => fallback(&item, error, false),
        (None, Ok(())) => TokenStream::new(),
    }
}
