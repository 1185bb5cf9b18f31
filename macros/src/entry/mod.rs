//! `#[tethered::main]` and `#[tethered::test]`: a tokio runtime and a root
//! scope around an `async fn`, with signal handling for `main`.

mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::common::expand_attribute;

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
    let model = |options: &[_], item, errors: &_| model::EntryFn::new(entry, options, item, errors);
    expand_attribute(entry.name(), true, args, item, model, expand::expand)
}
