//! `#[tethered::main]` and `#[tethered::test]`: a tokio runtime and a root
//! scope around an `async fn`, with signal handling for `main`.

mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::common::{Errors, emit, fallback, options};
use crate::scoped::parse_fn;

/// Which attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Main,
    Test,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Main => "tethered::main",
            Entry::Test => "tethered::test",
        }
    }
}

pub(crate) fn expand(entry: Entry, args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match parse_fn(item, entry.name()) {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let options = match options::parse(args) {
        Ok(options) => options,
        Err(error) => return fallback(&item, error, true),
    };
    let errors = Errors::new();
    let model = model::EntryFn::new(entry, &options, item.clone(), &errors);
    emit(model, errors, &item, true, expand::expand)
}
