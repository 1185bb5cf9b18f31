//! A checked model of `supervise!` to tokens. Cannot fail.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{
    BackoffModel, BodyModel, ChildModel, ChildShutdownModel, Delays, RestartModel, StrategyModel,
    Supervise, Timing,
};
use crate::common::{Support, duration};

// Input:
//
//     supervise! {
//         name: "svc",
//         strategy: one_for_all,
//         child "ingest" (transient, backoff "100ms".."5s", shutdown "2s") => ingest(rx.clone()),
//         body |sv| { serve(sv).await },
//     }
//
// Output (`::tethered` is `$crate` when called as `tethered::supervise!`):
//
//     ::tethered::Supervisor::builder()
//         .name("svc")
//         .strategy(::tethered::Strategy::OneForAll)
//         .child(
//             // Spanned on `child`, where the child's location points.
//             <::tethered::ChildSpec>::new("ingest", || {
//                 // Spanned on the expression: a non-future is reported there.
//                 <::tethered::__private::Supervise>::child(ingest(rx.clone()))
//             })
//             .restart(::tethered::Restart::Transient)
//             .backoff(::tethered::Backoff::new(const { … }, const { … }))
//             // `(shutdown "2s")`; or `Brutal`, `Infinity`.
//             .shutdown(::tethered::ChildShutdown::Timeout(const { … })),
//         )
//         .run(async |sv: &::tethered::Supervisor| { serve(sv).await })
//         .await
//
// Settings left out keep the builder's defaults; without a body, the body
// waits until the supervisor is asked to stop. When a child has a
// `#[cfg(…)]`, the builder is a local and each child is added by a
// statement that carries its attributes:
//
//     {
//         let mut __tethered_builder = ::tethered::Supervisor::builder().name("svc");
//         #[cfg(feature = "ingest")]
//         {
//             __tethered_builder = __tethered_builder.child(…);
//         }
//         __tethered_builder.run(…).await
//     }
pub(crate) fn expand(model: Supervise) -> TokenStream {
    let support = &model.support;
    let mut builder = quote!(#support::Supervisor::builder());
    if let Some(name) = &model.name {
        builder.extend(quote!(.name(#name)));
    }
    if let Some((strategy, span)) = &model.strategy {
        let variant = match strategy {
            StrategyModel::OneForOne => quote_spanned!(*span=> OneForOne),
            StrategyModel::OneForAll => quote_spanned!(*span=> OneForAll),
            StrategyModel::RestForOne => quote_spanned!(*span=> RestForOne),
        };
        builder.extend(quote!(.strategy(#support::Strategy::#variant)));
    }
    if let Some((restarts, span, (window, literal))) = &model.intensity {
        let restarts = spanned(Literal::u32_suffixed(*restarts), *span);
        let window = duration::to_tokens(*window, literal);
        builder.extend(quote!(.intensity(#restarts, #window)));
    }
    if let Some(grace) = &model.grace {
        let grace = timing(grace);
        builder.extend(quote!(.grace(#grace)));
    }
    if let Some(cancel) = &model.cancel {
        let cancel = timing(cancel);
        builder.extend(quote!(.cancel_timeout(#cancel)));
    }
    if let Some((seed, span)) = &model.seed {
        let seed = spanned(Literal::u64_suffixed(*seed), *span);
        builder.extend(quote!(.seed(#seed)));
    }
    // With a `#[cfg(…)]` child, every child is added by a statement of its
    // own, in order, so that the attribute can go on it.
    let cfgs = model.children.iter().any(|child| !child.cfgs.is_empty());
    let mut statements = TokenStream::new();
    for child in &model.children {
        let spec = child_spec(child, support);
        if cfgs {
            let cfg = &child.cfgs;
            statements.extend(quote! {
                #(#cfg)*
                {
                    __tethered_builder = __tethered_builder.child(#spec);
                }
            });
        } else {
            builder.extend(quote!(.child(#spec)));
        }
    }
    let body = match &model.body {
        // Ends when the supervisor is asked to stop, so that the stop phase
        // goes straight on to the children instead of waiting out the grace
        // period for a body that does nothing.
        BodyModel::Forever => quote! {
            async |_: &#support::Supervisor| {
                #support::stop_requested().await;
            }
        },
        BodyModel::Closure(closure) => quote!(#closure),
        // Any type, so the code around reports nothing more.
        BodyModel::Rejected(span) => {
            let support = support.at(*span);
            quote_spanned! {*span=>
                async |_: &#support::Supervisor| loop {}
            }
        }
    };
    if !cfgs {
        return quote!(#builder.run(#body).await);
    }
    quote! {
        {
            let mut __tethered_builder = #builder;
            #statements
            __tethered_builder.run(#body).await
        }
    }
}

fn child_spec(child: &ChildModel, support: &Support) -> TokenStream {
    let ChildModel {
        cfgs: _,
        keyword,
        name,
        restart,
        backoff,
        shutdown,
        expr,
    } = child;
    // Both calls start with a token of the user's (`<`), not with the crate's
    // path, which may be `$crate`: a call is located where its first token
    // is, and `ChildSpec::new` records its location as the child's. So are
    // the errors about the calls, and about the closure around the child.
    let make = {
        let support = support.at(expr.span());
        quote_spanned!(expr.span()=> <#support::__private::Supervise>::child(#expr))
    };
    // Not `move`: the factory borrows what it clones into each new future.
    let mut spec = {
        let support = support.at(keyword.span());
        quote_spanned!(keyword.span()=> <#support::ChildSpec>::new(#name, || #make))
    };
    if let Some((restart, span)) = restart {
        let variant = match restart {
            RestartModel::Permanent => quote_spanned!(*span=> Permanent),
            RestartModel::Transient => quote_spanned!(*span=> Transient),
            RestartModel::Temporary => quote_spanned!(*span=> Temporary),
        };
        spec.extend(quote!(.restart(#support::Restart::#variant)));
    }
    if let Some(backoff) = backoff_tokens(backoff, support) {
        spec.extend(quote!(.backoff(#backoff)));
    }
    if let Some(shutdown) = shutdown {
        let shutdown = match shutdown {
            ChildShutdownModel::Brutal(span) => {
                let support = support.at(*span);
                quote_spanned!(*span=> #support::ChildShutdown::Brutal)
            }
            ChildShutdownModel::Infinity(span) => {
                let support = support.at(*span);
                quote_spanned!(*span=> #support::ChildShutdown::Infinity)
            }
            ChildShutdownModel::Timeout(timeout) => {
                let timeout = timing(timeout);
                quote!(#support::ChildShutdown::Timeout(#timeout))
            }
        };
        spec.extend(quote!(.shutdown(#shutdown)));
    }
    spec
}

/// The child's `Backoff`, or `None` for the default.
fn backoff_tokens(backoff: &BackoffModel, support: &Support) -> Option<TokenStream> {
    let BackoffModel {
        delays,
        factor,
        jitter,
    } = backoff;
    if delays.is_none() && factor.is_none() && jitter.is_none() {
        return None;
    }
    let mut tokens = match delays {
        None => quote!(<#support::Backoff as ::core::default::Default>::default()),
        Some(Delays::None(span)) => {
            let support = support.at(*span);
            quote_spanned!(*span=> #support::Backoff::none())
        }
        Some(Delays::Range { initial, max }) => {
            let initial = duration::to_tokens(initial.0, &initial.1);
            let max = duration::to_tokens(max.0, &max.1);
            quote!(#support::Backoff::new(#initial, #max))
        }
    };
    if let Some((factor, span)) = factor {
        let factor = spanned(Literal::f64_suffixed(*factor), *span);
        tokens.extend(quote!(.factor(#factor)));
    }
    if let Some((jitter, span)) = jitter {
        let jitter = spanned(Literal::f64_suffixed(*jitter), *span);
        tokens.extend(quote!(.jitter(#jitter)));
    }
    Some(tokens)
}

/// A shutdown duration: a constant, or the user's expression, typed as a
/// `Duration` where it is written.
fn timing(timing: &Timing) -> TokenStream {
    match timing {
        Timing::Literal(duration, literal) => duration::to_tokens(*duration, literal),
        Timing::Runtime(expr, span) => {
            quote_spanned! {*span=>
                {
                    let duration: ::core::time::Duration = #expr;
                    duration
                }
            }
        }
    }
}

fn spanned(mut literal: Literal, span: Span) -> Literal {
    literal.set_span(span);
    literal
}
