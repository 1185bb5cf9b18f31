//! `#[periodic]`: an `async fn` whose body becomes one run of a schedule.

mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::common::expand_attribute;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute(
        "periodic",
        false,
        args,
        item,
        model::PeriodicFn::new,
        expand::expand,
    )
}
