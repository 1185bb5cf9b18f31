//! Recorded `.await`s: every `expr.await` in a body that tethered expands
//! becomes
//!
//! ```text
//! ::tethered::__private::Recorded::new(
//!     ::core::future::IntoFuture::into_future(expr),
//!     { static AT: ::tethered::WaitSite = ::tethered::WaitSite::new(file!(), line!(), column!(), "expr.await"); &AT },
//! ).await
//! ```
//!
//! so that each poll records, in the task or scope being polled, where its
//! code waits: `tethered::tree()` and the shutdown reports show it. One
//! expression, as the `.await` was: the temporaries in `expr` live as long
//! as they did. Located at the `.await` keyword.

use quote::{quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprAwait, Item};

use super::Support;

/// The longest awaited code kept for a site, in characters.
const CODE_MAX: usize = 80;

/// Rewrites every `.await` it visits (nested items excepted: their code is
/// not the body's).
pub(crate) struct AwaitRecorder<'a> {
    pub(crate) support: &'a Support,
}

impl VisitMut for AwaitRecorder<'_> {
    fn visit_item_mut(&mut self, _item: &mut Item) {}

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        // The code as written, before the awaits inside it are rewritten.
        let code = matches!(expr, Expr::Await(_)).then(|| tidy(&quote!(#expr).to_string()));
        // The awaits inside first: the one this becomes is not visited.
        visit_mut::visit_expr_mut(self, expr);
        if let (
            Some(code),
            Expr::Await(ExprAwait {
                attrs,
                base,
                dot_token,
                await_token,
            }),
        ) = (code, &mut *expr)
        {
            let span = await_token.span;
            let support = self.support.at(span);
            let recorded = quote_spanned! {span=>
                #(#attrs)*
                #support::__private::Recorded::new(
                    ::core::future::IntoFuture::into_future(#base),
                    {
                        static __TETHERED_AT: #support::WaitSite = #support::WaitSite::new(
                            ::core::file!(),
                            ::core::line!(),
                            ::core::column!(),
                            #code,
                        );
                        &__TETHERED_AT
                    },
                ) #dot_token #await_token
            };
            *expr = Expr::Verbatim(recorded);
        }
    }
}

/// Records the `.await`s in `expr` (a tethered macro's argument, which the
/// body's own walk does not reach once expanded).
pub(crate) fn record(expr: &mut Expr, support: &Support) {
    AwaitRecorder { support }.visit_expr_mut(expr);
}

/// Token text as written: `db . commit () . await` → `db.commit().await`;
/// long code shortened.
fn tidy(tokens: &str) -> String {
    let mut code = tokens.to_owned();
    for (spaced, tight) in [
        (" . ", "."),
        (" .", "."),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" ::", "::"),
        (":: ", "::"),
        (" ?", "?"),
        (" ,", ","),
        ("& ", "&"),
        (" [", "["),
        ("[ ", "["),
        (" ]", "]"),
        ("! (", "!("),
        // A turbofish: `pending::<()>()`, not comparisons.
        ("::< ", "::<"),
        ("::<", "::<"),
        (" >(", ">("),
        (" >.", ">."),
        (" >::", ">::"),
    ] {
        code = code.replace(spaced, tight);
    }
    if code.chars().count() > CODE_MAX {
        let kept: String = code.chars().take(CODE_MAX - 1).collect();
        code = format!("{kept}…");
    }
    code
}

/// For tests: the tokens of a body with its awaits recorded.
#[cfg(test)]
fn recorded(tokens: proc_macro2::TokenStream) -> String {
    let mut block: syn::Block = syn::parse2(quote!({ #tokens })).unwrap();
    AwaitRecorder {
        support: &Support::Tethered,
    }
    .visit_block_mut(&mut block);
    quote!(#block).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_reads_as_written() {
        assert_eq!(tidy("db . commit () . await"), "db.commit().await");
        assert_eq!(
            tidy("tokio :: time :: sleep (Duration :: from_secs (1)) . await"),
            "tokio::time::sleep(Duration::from_secs(1)).await"
        );
        assert_eq!(tidy("fetch (& url) . await ?"), "fetch(&url).await?");
        assert_eq!(
            tidy("std :: future :: pending :: < () > () . await"),
            "std::future::pending::<()>().await"
        );
        let long = tidy(&"x".repeat(200));
        assert_eq!(long.chars().count(), CODE_MAX);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn every_await_is_recorded_once_nested_ones_too_but_not_in_nested_items() {
        let code = recorded(quote! {
            let rows = db.query(fetch(id).await).await?;
            spawned(async move { tick().await });
            fn helper() { async { inner().await }; }
        });
        assert_eq!(code.matches("Recorded :: new").count(), 3, "{code}");
        assert!(code.contains("\"fetch(id).await\""), "{code}");
        assert!(
            code.contains("\"db.query(fetch(id).await).await\""),
            "{code}"
        );
        assert!(code.contains("\"tick().await\""), "{code}");
        assert!(!code.contains("\"inner().await\""), "{code}");
    }
}
