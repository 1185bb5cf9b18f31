//! The path of the runtime crate in expansions: `::tethered`, unless the
//! user depends on it under another name and says so with `crate = tt`
//! (or `supervise!` is reached through `tethered::supervise!`, which passes
//! `$crate`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote_spanned};
use syn::{Expr, ExprLit, ExprPath, Lit, Path};

use super::options::RawOption;

const FORM: &str = "`crate` takes the path of the tethered crate as your Cargo.toml names it, like `crate = tt` or `crate = \"tt\"`";

/// The path expansions name the runtime crate by.
#[derive(Clone)]
pub(crate) enum Support {
    /// `::tethered`.
    Tethered,
    /// The path given with `crate = …`, or `$crate`, with its own spans.
    Given(TokenStream),
}

impl Support {
    /// The path given by a `crate = …` option: a path, or a string holding
    /// one.
    pub(crate) fn from_option(option: &RawOption) -> syn::Result<Self> {
        let path = match &option.value {
            Expr::Path(ExprPath {
                qself: None, path, ..
            }) => path.clone(),
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => {
                // Spanned on the string, where a path that does not resolve
                // is then reported.
                text.parse::<Path>()
                    .map_err(|_| syn::Error::new(text.span(), FORM))?
            }
            other => return Err(syn::Error::new_spanned(other, FORM)),
        };
        let generic = path
            .segments
            .iter()
            .any(|segment| !segment.arguments.is_none());
        if generic {
            return Err(syn::Error::new_spanned(&path, FORM));
        }
        Ok(Support::Given(path.to_token_stream()))
    }

    /// The path, spanned at `span` when it is the default: an expansion
    /// spanned on the user's code stays there.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        match self {
            Support::Tethered => quote_spanned!(span=> ::tethered),
            Support::Given(path) => path.clone(),
        }
    }

    /// The names of the path's segments, to recognise `tt::spawn!` when the
    /// crate is `tt`; `None` for `$crate`, which user code cannot write.
    pub(crate) fn segments(&self) -> Option<Vec<String>> {
        match self {
            Support::Tethered => Some(vec!["tethered".to_owned()]),
            Support::Given(path) => syn::parse2::<Path>(path.clone()).ok().map(|path| {
                path.segments
                    .iter()
                    .map(|segment| segment.ident.to_string())
                    .collect()
            }),
        }
    }
}

impl ToTokens for Support {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.at(Span::call_site()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::options;
    use quote::quote;

    fn support(tokens: TokenStream) -> syn::Result<Support> {
        Support::from_option(&options::parse(tokens).unwrap()[0])
    }

    #[test]
    fn takes_a_path_or_a_string_holding_one() {
        for tokens in [
            quote!(crate = tt),
            quote!(crate = "tt"),
            quote!(crate = ::tt),
        ] {
            let found = support(tokens).unwrap();
            assert_eq!(found.segments(), Some(vec!["tt".to_owned()]));
        }
        let nested = support(quote!(crate = "crate::rt::tethered")).unwrap();
        assert_eq!(
            nested.to_token_stream().to_string(),
            "crate :: rt :: tethered"
        );
        assert_eq!(
            Support::Tethered.to_token_stream().to_string(),
            ":: tethered"
        );
    }

    #[test]
    fn anything_else_says_what_it_takes() {
        for tokens in [
            quote!(crate = 5),
            quote!(crate = "not a path"),
            quote!(crate = tt::<u8>),
        ] {
            let error = support(tokens).err().unwrap().to_string();
            assert!(error.contains("like `crate = tt`"), "{error}");
        }
    }
}
