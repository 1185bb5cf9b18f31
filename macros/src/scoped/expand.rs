//! A checked model to tokens. Cannot fail.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use super::model::{Output, ScopedFn};
use crate::common::{body, duration};

// Input:
//
//     #[scoped(timeout = "5s")]
//     async fn fetch(url: String) -> Result<Page, Error> { …spawn!(get(url))… }
//
// Output:
//
//     async fn fetch(url: String) -> Result<Page, Error> {
//         ::tethered::__private::scoped_result(
//             ::tethered::__private::builder().name("fetch").timeout(const { … }),
//             async move |__tethered_scope: &::tethered::Scope| -> Result<Page, Error> {
//                 …__tethered_scope.spawn(get(url))…
//             },
//         )
//         .await
//     }
pub(crate) fn expand(model: ScopedFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &model.item;
    let scope = body::scope_ident();
    let span = sig.ident.span();
    let builder = builder(&model);
    let (adapter, annotation) = match &model.output {
        Output::Unit => (quote_spanned!(span=> scoped_unit), TokenStream::new()),
        Output::Result(ty) => (quote_spanned!(span=> scoped_result), annotation(ty)),
        Output::Value(ty) => (quote_spanned!(span=> scoped_value), annotation(ty)),
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            ::tethered::__private::#adapter(
                #builder,
                async move |#scope: &::tethered::Scope| #annotation #block,
            )
            .await
        }
    }
}

/// The closure's return type, so that `?` in the body converts as it would
/// in the fn. `impl Trait` cannot be named there; it is left to inference.
fn annotation(ty: &Type) -> TokenStream {
    match ty {
        Type::ImplTrait(_) => TokenStream::new(),
        ty => quote_spanned!(ty.span()=> -> #ty),
    }
}

fn builder(model: &ScopedFn) -> TokenStream {
    let name = &model.name;
    let mut tokens = quote!(::tethered::__private::builder().name(#name));
    if let Some(on_exit) = &model.on_exit {
        let variant = if on_exit == "cancel" {
            quote_spanned!(on_exit.span()=> Cancel)
        } else {
            quote_spanned!(on_exit.span()=> Join)
        };
        tokens.extend(quote!(.on_exit(::tethered::OnExit::#variant)));
    }
    if let Some((timeout, literal)) = &model.timeout {
        let timeout = duration::to_tokens(*timeout, literal);
        tokens.extend(quote!(.timeout(#timeout)));
    }
    if let Some((timeout, literal)) = &model.cleanup_timeout {
        let timeout = duration::to_tokens(*timeout, literal);
        tokens.extend(quote!(.cleanup_timeout(#timeout)));
    }
    tokens
}
