//! A checked model of `#[periodic]` to tokens. Cannot fail.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{ItemFn, Signature};

use super::model::{Argument, Every, OverlapModel, PeriodicFn, Receiver};
use crate::common::{duration, mentions, split_attributes};

// Input:
//
//     #[periodic(every = "5s", overlap = cancel)]
//     async fn refresh(cache: Cache) -> Result<(), Error> { … }
//
// Output:
//
//     // `::tethered` is the path given by `crate = …`, if any.
//     fn refresh(cache: Cache) -> ::tethered::PeriodicTask {
//         ::tethered::Periodic::every(const { … })
//             .overlap(::tethered::Overlap::Cancel)
//             .name("refresh")
//             .run(move || {
//                 // With the argument's own `#[cfg(…)]`, if any.
//                 let cache = ::tethered::__private::copy_for_run(&cache);
//                 async move {
//                     let __tethered_output: Result<(), Error> =
//                         async move { let b: Result<(), Error> = { … }; b }.await;
//                     // `Err` as a `TaskError`, shown through `Display`
//                     // or, failing that, `Debug`.
//                     (&&Finished::new(__tethered_output)).finish()
//                 }
//             })
//             .boxed()
//     }
pub(crate) fn expand(model: PeriodicFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &model.item;
    let Signature {
        unsafety,
        abi,
        fn_token,
        ident,
        generics,
        inputs,
        ..
    } = sig;
    let where_clause = &generics.where_clause;
    let span = ident.span();
    let support = model.support.at(span);
    let schedule = schedule(&model);
    let output = &model.output;
    // Only the arguments the body names are copied into each run: one used
    // only by `every`, or not at all, gets the compiler's usual treatment.
    let body_tokens = model.item.block.to_token_stream();
    // The type is written out where it can be: a non-`Clone` argument is
    // then reported at its type, and the compiler does not suggest borrowing
    // the argument (which would not help).
    let copies = model
        .arguments
        .iter()
        .filter(|argument| mentions(&body_tokens, &argument.name))
        .map(
            |Argument {
                 attrs,
                 name,
                 nameable_type,
             }| match nameable_type {
                Some(ty) => {
                    let span = syn::spanned::Spanned::span(ty);
                    let support = model.support.at(span);
                    quote_spanned!(span=>
                        #(#attrs)*
                        let #name = #support::__private::copy_for_run::<#ty>(&#name);
                    )
                }
                None => {
                    let support = model.support.at(name.span());
                    quote_spanned!(name.span()=>
                        #(#attrs)*
                        let #name = #support::__private::copy_for_run(&#name);
                    )
                }
            },
        );
    let this = self_copy();
    let (owned_self, copy_self) = match model.receiver {
        None => (TokenStream::new(), TokenStream::new()),
        Some(Receiver::Value) => (
            quote!(let #this = self;),
            quote!(let #this = #support::__private::copy_for_run(&#this);),
        ),
        Some(Receiver::Reference) => (
            quote!(let #this = #support::__private::copy_for_run(self);),
            quote!(let #this = #support::__private::copy_for_run(&#this);),
        ),
    };
    // Inside the run, `self` is the run's own copy.
    let mut block = block.clone();
    if model.receiver.is_some() {
        RenameSelf { to: this.clone() }.visit_block_mut(&mut block);
    }
    let body = quote!(#block);
    let (outer, inner) = split_attributes(attrs);
    quote_spanned! {span=>
        #(#outer)*
        #vis #unsafety #abi #fn_token #ident #generics (#inputs) -> #support::PeriodicTask #where_clause {
            #(#inner)*
            #owned_self
            #schedule
                .run(move || {
                    #copy_self
                    #(#copies)*
                    async move {
                        // The body in a block of its own, typed as the fn
                        // declares, so that its `?` and `return` mean what
                        // they mean in the fn.
                        let __tethered_output: #output = async move {
                            let __tethered_body: #output = #body;
                            __tethered_body
                        }
                        .await;
                        #[allow(unused_imports)]
                        use #support::__private::{FinishDebug as _, FinishDisplay as _, FinishUnit as _};
                        (&&#support::__private::Finished::new(__tethered_output)).finish()
                    }
                })
                .boxed()
        }
    }
}

fn schedule(model: &PeriodicFn) -> TokenStream {
    let every = match &model.every {
        Every::Literal(duration, text) => duration::to_tokens(*duration, text),
        Every::Runtime(expr, parens) => {
            // Evaluated when the fn is called, before the arguments move
            // into the schedule; inside a method, `self` is the fn's copy.
            let mut expr = (**expr).clone();
            if model.receiver.is_some() {
                RenameSelf { to: self_copy() }.visit_expr_mut(&mut expr);
            }
            // The type is asked for by the parentheses, where the
            // compiler's "expected due to this" then points.
            quote_spanned! {*parens=>
                {
                    let every: ::core::time::Duration = #expr;
                    every
                }
            }
        }
    };
    let name = &model.name;
    let support = &model.support;
    let mut tokens = quote!(#support::Periodic::every(#every).name(#name));
    if let Some((overlap, span)) = &model.overlap {
        let support = support.at(*span);
        let policy = match overlap {
            OverlapModel::Cancel => quote_spanned!(*span=> #support::Overlap::Cancel),
            OverlapModel::Skip => quote_spanned!(*span=> #support::Overlap::Skip),
            OverlapModel::Queue => quote_spanned!(*span=> #support::Overlap::Queue),
            OverlapModel::Concurrent(limit) => {
                let limit = *limit as usize;
                quote_spanned! {*span=>
                    #support::Overlap::Concurrent(
                        const { ::core::num::NonZeroUsize::new(#limit).unwrap() }
                    )
                }
            }
        };
        tokens.extend(quote!(.overlap(#policy)));
    }
    if let Some(missed) = &model.missed {
        let variant = match missed.to_string().as_str() {
            "burst" => quote!(Burst),
            "delay" => quote!(Delay),
            _ => quote!(Skip),
        };
        tokens.extend(quote!(.missed(#support::Missed::#variant)));
    }
    if model.first_after {
        tokens.extend(quote!(.first_after()));
    }
    if let Some((jitter, literal)) = &model.jitter {
        let jitter = duration::to_tokens(*jitter, literal);
        // A default seed of the fn's own: deterministic, and different per fn.
        let seed = model
            .seed
            .unwrap_or_else(|| fnv1a(model.name.value().as_bytes()));
        tokens.extend(quote!(.jitter(#jitter, #seed)));
    }
    if let Some((timeout, literal)) = &model.timeout {
        let timeout = duration::to_tokens(*timeout, literal);
        tokens.extend(quote!(.timeout(#timeout)));
    }
    if model.on_error_stop {
        tokens.extend(quote!(.on_error(#support::OnError::Stop)));
    }
    if model.on_stop_continue {
        tokens.extend(quote!(.on_stop(#support::OnStop::Continue)));
    }
    tokens
}

/// The name of the fn's own copy of `self`, in a method.
fn self_copy() -> Ident {
    Ident::new("__tethered_self", Span::call_site())
}

/// Replaces `self` with the run's copy in the body, not in nested items
/// (an `impl Drop` in the body keeps its own `self`).
struct RenameSelf {
    to: Ident,
}

impl VisitMut for RenameSelf {
    fn visit_item_mut(&mut self, _item: &mut syn::Item) {}

    fn visit_expr_path_mut(&mut self, path: &mut syn::ExprPath) {
        if path.qself.is_none() && path.path.is_ident("self") {
            let span = path.path.segments[0].ident.span();
            let mut renamed = self.to.clone();
            renamed.set_span(span);
            path.path.segments[0].ident = renamed;
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = rename_self_tokens(mac.tokens.clone(), &self.to);
    }
}

/// The same in a macro's raw tokens: `self`, but not `self::path`.
fn rename_self_tokens(tokens: TokenStream, this: &Ident) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    for (index, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let path = matches!(
                    (trees.get(index + 1), trees.get(index + 2)),
                    (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':'
                );
                if path {
                    out.extend([tree.clone()]);
                } else {
                    let mut renamed = this.clone();
                    renamed.set_span(ident.span());
                    out.extend([TokenTree::Ident(renamed)]);
                }
            }
            TokenTree::Group(group) => {
                let mut renamed = proc_macro2::Group::new(
                    group.delimiter(),
                    rename_self_tokens(group.stream(), this),
                );
                renamed.set_span(group.span());
                out.extend([TokenTree::Group(renamed)]);
            }
            other => out.extend([other.clone()]),
        }
    }
    out
}

/// FNV-1a: a fixed, well-spread hash of the fn's name, for the default
/// jitter seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
