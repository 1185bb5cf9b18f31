//! A checked model of `#[tethered::main]` / `#[tethered::test]` to tokens.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr, ReturnType};

use super::Entry;
use super::model::{EntryFn, Flavor};
use crate::common::{body, duration, split_attributes};

// Input:
//
//     #[tethered::main(grace = "5s")]
//     async fn main() -> Result<(), Error> { … }
//
// Output (`::tethered` is the path given by `crate = …`, if any):
//
//     fn main() -> ::std::process::ExitCode {
//         let runtime = ::tethered::__private::tokio::runtime::Builder::new_multi_thread()
//             .enable_all().build().expect(…);
//         ::tethered::__private::main(runtime, const { … }, const { … }, true,
//             async move |__tethered_scope: &::tethered::Scope| -> Result<(), Error> { … })
//     }
pub(crate) fn expand(model: EntryFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &model.item;
    let scope = body::scope_ident();
    let support = &model.support;
    let runtime = runtime(&model);
    let annotation = match &sig.output {
        ReturnType::Default => TokenStream::new(),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let ident = &sig.ident;
    let (body, local) = match model.flavor {
        Flavor::Local => (
            quote!(async move |#scope: &#support::LocalScope<'_, #support::NonSend>| #annotation #block),
            quote!(_local),
        ),
        _ => (
            quote!(async move |#scope: &#support::Scope| #annotation #block),
            TokenStream::new(),
        ),
    };
    let main = Ident::new(&format!("main{local}"), Span::call_site());
    let test = Ident::new(&format!("test{local}"), Span::call_site());
    let (outer, inner) = split_attributes(attrs);
    match model.entry {
        Entry::Main => {
            let grace = duration_tokens(&model.grace);
            let cancel_timeout = duration_tokens(&model.cancel_timeout);
            // Spanned on the return type, where a type `main` cannot
            // return is reported.
            let span = match &sig.output {
                ReturnType::Default => Span::call_site(),
                ReturnType::Type(_, ty) => ty.span(),
            };
            let support_here = support.at(span);
            let dump_tree = model.dump_tree;
            let run = quote_spanned! {span=>
                #support_here::__private::#main(#runtime, #grace, #cancel_timeout, #dump_tree, #body)
            };
            quote! {
                #(#outer)*
                #vis fn #ident() -> ::std::process::ExitCode {
                    #(#inner)*
                    #run
                }
            }
        }
        Entry::Test => {
            let output = &sig.output;
            quote! {
                #[::core::prelude::v1::test]
                #(#outer)*
                #vis fn #ident() #output {
                    #(#inner)*
                    #support::__private::#test(#runtime, #body)
                }
            }
        }
    }
}

fn runtime(model: &EntryFn) -> TokenStream {
    let support = &model.support;
    let mut builder = match model.flavor {
        Flavor::CurrentThread | Flavor::Local => {
            quote!(#support::__private::tokio::runtime::Builder::new_current_thread())
        }
        Flavor::MultiThread => {
            quote!(#support::__private::tokio::runtime::Builder::new_multi_thread())
        }
    };
    if let Some(threads) = model.worker_threads {
        let threads = threads as usize;
        builder.extend(quote!(.worker_threads(#threads)));
    }
    if model.start_paused {
        builder.extend(quote!(.start_paused(true)));
    }
    let build = match model.flavor {
        Flavor::Local => quote!(build_local(
            #support::__private::tokio::runtime::LocalOptions::default()
        )),
        _ => quote!(build()),
    };
    quote! {
        #builder
            .enable_all()
            .#build
            .expect("failed to build the tokio runtime")
    }
}

fn duration_tokens((duration, literal): &(std::time::Duration, Option<LitStr>)) -> TokenStream {
    let literal = literal
        .clone()
        .unwrap_or_else(|| LitStr::new("default", Span::call_site()));
    duration::to_tokens(*duration, &literal)
}
