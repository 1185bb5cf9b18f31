//! `supervise! { … }`: a supervisor, its restartable children and its body,
//! as one expression that runs it (`.await` included).

mod expand;
mod model;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::common::Errors;

/// The expansion, preceded by the errors if there are any. The model is
/// built from whatever was right, so that the expression still has its type
/// and the children's expressions are still checked, without a cascade of
/// errors from the mistakes already reported.
pub(crate) fn expand(tokens: TokenStream) -> TokenStream {
    let errors = Errors::new();
    let model = model::Supervise::new(parse::parse(tokens), &errors);
    let expansion = expand::expand(model);
    match errors.finish() {
        Ok(()) => expansion,
        Err(error) => {
            let error = error.into_compile_error();
            quote!({ #error #expansion })
        }
    }
}
