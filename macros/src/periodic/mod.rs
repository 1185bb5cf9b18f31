//! `#[periodic]`: an `async fn` whose body becomes one run of a schedule.

mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::common::{Errors, emit, fallback, options};
use crate::scoped::parse_fn;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match parse_fn(item, "periodic") {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let options = match options::parse(args) {
        Ok(options) => options,
        Err(error) => return fallback(&item, error, false),
    };
    let errors = Errors::new();
    let model = model::PeriodicFn::new(&options, item.clone(), &errors);
    emit(model, errors, &item, false, expand::expand)
}
