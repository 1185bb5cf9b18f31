//! A checked model to tokens. Cannot fail.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{ItemFn, Type};

use super::model::{Locals, Output, ScopedFn};
use crate::common::{body, duration, split_attributes};

// Input:
//
//     #[scoped(timeout = "5s")]
//     async fn fetch(url: String) -> Result<Page, Error> { …spawn!(get(url))… }
//
// Output (`::tethered` is the path given by `crate = …`, if any):
//
//     async fn fetch(url: String) -> Result<Page, Error> {
//         // How failures reach the caller, picked by the type checker from
//         // the return type (aliases of `Result` included).
//         let __tethered_kind = {
//             use ::tethered::__private::{ResultDisplay as _, …, Value as _};
//             (&&&&&::tethered::__private::Scoped::<Result<Page, Error>>::new()).kind()
//         };
//         match __tethered_kind.checked()
//             .run(
//                 ::tethered::__private::builder().name("fetch").timeout(const { … }),
//                 async move |__tethered_scope: &::tethered::Scope| -> Result<Page, Error> {
//                     …__tethered_scope.spawn(get(url))…
//                 },
//             )
//             .await
//         {
//             ::core::result::Result::Ok(value) => value,
//             // A failure with no `Err` to go in: a panic located at `fetch`.
//             ::core::result::Result::Err(failure) => failure.raise(),
//         }
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
    let support = &model.support;
    let private = quote!(#support::__private);
    let (kind, annotation) = match &model.output {
        Output::Unit => (
            quote!((&&&&&#private::Scoped::<()>::new()).kind()),
            TokenStream::new(),
        ),
        // An `impl Trait` cannot be named outside the signature; it is no
        // `Result` or `()` anyway.
        Output::Opaque => (quote!(#private::ValueKind::new()), TokenStream::new()),
        Output::Type(ty) => {
            // `impl Trait` inside the type (`Result<impl Display, E>`) is
            // left to inference.
            let mut named = (**ty).clone();
            InferOpaque.visit_type_mut(&mut named);
            (
                quote!((&&&&&#private::Scoped::<#named>::new()).kind()),
                quote_spanned!(ty.span()=> -> #named),
            )
        }
    };
    let run = match model.locals {
        Locals::None => quote_spanned! {span=>
            __tethered_kind.checked().run(#builder, async move |#scope: &#support::Scope| #annotation #block)
        },
        // Neither the closure nor the `async` block is `move`: the body
        // borrows the fn's arguments where they are, for as long as the
        // fn runs, and its local children borrow them in turn. The body's
        // future comes boxed (see `Scope::run_local`), its output named.
        Locals::Send => {
            let output = match &model.output {
                Output::Unit => quote!(()),
                Output::Opaque => quote!(_),
                Output::Type(ty) => {
                    let mut named = (**ty).clone();
                    InferOpaque.visit_type_mut(&mut named);
                    quote!(#named)
                }
            };
            // The scope reborrowed through the closure's argument: the
            // `async` block then captures the scope, not the argument.
            let local = Ident::new("__tethered_local_scope", span);
            quote_spanned! {span=>
                __tethered_kind.checked().run_local(
                    #builder,
                    |#local: &#support::LocalScope<'_>| #private::boxed::<#output, _>(async {
                        let #scope = &*#local;
                        #block
                    }),
                )
            }
        }
        Locals::NonSend => quote_spanned! {span=>
            __tethered_kind.checked().run_local_non_send(
                #builder,
                async |#scope: &#support::LocalScope<'_, #support::NonSend>| #annotation #block,
            )
        },
    };
    let raise = quote_spanned!(span=> __tethered_failure.raise());
    let (outer, inner) = split_attributes(attrs);
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            let __tethered_kind = {
                #[allow(unused_imports)]
                use #private::{
                    ResultDebug as _, ResultDisplay as _, ResultOpaque as _, Unit as _, Value as _,
                };
                #kind
            };
            match #run.await {
                ::core::result::Result::Ok(__tethered_value) => __tethered_value,
                ::core::result::Result::Err(__tethered_failure) => #raise,
            }
        }
    }
}

/// Replaces every `impl Trait` in a type with `_`.
struct InferOpaque;

impl VisitMut for InferOpaque {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(opaque) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](opaque.impl_token.span),
            });
            return;
        }
        visit_mut::visit_type_mut(self, ty);
    }
}

fn builder(model: &ScopedFn) -> TokenStream {
    let name = &model.name;
    let support = &model.support;
    let mut tokens = quote!(#support::__private::builder().name(#name));
    if let Some(on_exit) = &model.on_exit {
        let variant = if on_exit == "cancel" {
            quote_spanned!(on_exit.span()=> Cancel)
        } else {
            quote_spanned!(on_exit.span()=> Join)
        };
        tokens.extend(quote!(.on_exit(#support::OnExit::#variant)));
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
