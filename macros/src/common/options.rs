//! `key = value, …` attribute arguments: the grammar every attribute macro of
//! tethered shares, and the checks on keys (unknown, duplicated) and values
//! (kind, duration) that give every mistake its own spanned message.

use std::time::Duration;

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprPath, Ident, Lit, LitStr, Token};

use super::Errors;
use super::duration;

/// One `key = value` argument, value not yet interpreted.
pub(crate) struct RawOption {
    pub(crate) key: Ident,
    pub(crate) value: Expr,
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `{key} = …`: every option takes a value"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(RawOption { key, value })
    }
}

/// Parses `key = value, …` (possibly empty). A plain function over tokens,
/// so it can be tested (and fuzzed) without a compiler.
pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Vec<RawOption>> {
    let options = Punctuated::<RawOption, Token![,]>::parse_terminated.parse2(tokens)?;
    Ok(options.into_iter().collect())
}

/// Keeps the options whose keys are in `known`, reporting unknown keys (with
/// a suggestion when one is close) and duplicated ones.
pub(crate) fn check_keys<'a>(
    options: &'a [RawOption],
    known: &[&str],
    errors: &Errors,
) -> Vec<&'a RawOption> {
    let mut kept: Vec<&RawOption> = Vec::new();
    for option in options {
        let key = option.key.to_string();
        if !known.contains(&key.as_str()) {
            let accepted = known
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let message = match closest(&key, known) {
                Some(suggestion) => format!(
                    "unknown option `{key}`; did you mean `{suggestion}`? (accepted: {accepted})"
                ),
                None => format!("unknown option `{key}`; accepted: {accepted}"),
            };
            errors.error_spanned_by(&option.key, message);
        } else if kept.iter().any(|seen| seen.key == option.key) {
            errors.error_spanned_by(
                &option.key,
                format!("`{key}` is given twice; keep one `{key} = …`"),
            );
        } else {
            kept.push(option);
        }
    }
    kept
}

/// The known key closest to `key`, if it is close enough to be a typo.
pub(crate) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (levenshtein(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The value as a string literal, or an error naming the expected form.
pub(crate) fn string(option: &RawOption, example: &str) -> syn::Result<LitStr> {
    match &option.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => Ok(text.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "`{}` takes a string, like `{} = {example}`",
                option.key, option.key
            ),
        )),
    }
}

/// The value as a duration string, parsed and checked.
pub(crate) fn duration(option: &RawOption) -> syn::Result<(Duration, LitStr)> {
    let text = string(option, "\"5s\"")?;
    // Without a `timeout`, nothing times out.
    let unlimited = (option.key == "timeout").then_some("for no timeout, leave `timeout` out");
    duration::parse(&text, unlimited).map(|parsed| (parsed, text))
}

/// The value as one of the bare words in `accepted`.
pub(crate) fn word(option: &RawOption, accepted: &[&str]) -> syn::Result<Ident> {
    let forms = accepted.join(" | ");
    let key = &option.key;
    match &option.value {
        Expr::Path(ExprPath { path, .. }) if path.get_ident().is_some() => {
            let ident = path.get_ident().cloned().unwrap_or_else(|| key.clone());
            if accepted.contains(&ident.to_string().as_str()) {
                Ok(ident)
            } else {
                Err(syn::Error::new_spanned(
                    &ident,
                    format!("unknown `{key}` value `{ident}`; expected `{key} = {forms}`"),
                ))
            }
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected `{key} = {forms}`"),
        )),
    }
}

/// The value as a positive integer literal.
pub(crate) fn positive_integer(option: &RawOption) -> syn::Result<u64> {
    let key = &option.key;
    match &option.value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(number),
            ..
        }) => match number.base10_parse::<u64>() {
            Ok(0) => Err(syn::Error::new_spanned(
                number,
                format!("`{key}` must be at least 1"),
            )),
            Ok(value) => Ok(value),
            Err(_) => Err(syn::Error::new_spanned(
                number,
                format!("`{key}` takes a positive whole number"),
            )),
        },
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a positive whole number, like `{key} = 4`"),
        )),
    }
}

/// The value as `true` or `false`.
pub(crate) fn boolean(option: &RawOption) -> syn::Result<bool> {
    match &option.value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(flag),
            ..
        }) => Ok(flag.value),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{}` takes `true` or `false`", option.key),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(closest("timout", &["timeout", "name"]), Some("timeout"));
        assert_eq!(closest("on_exti", &["on_exit", "name"]), Some("on_exit"));
        assert_eq!(closest("colour", &["timeout", "name"]), None);
    }

    #[test]
    fn reports_unknown_and_duplicate_keys_together() {
        let options = parse(quote!(timout = "1s", name = "a", name = "b")).unwrap();
        let errors = Errors::new();
        let kept = check_keys(&options, &["timeout", "name"], &errors);
        assert_eq!(kept.len(), 1);
        let message = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>();
        assert_eq!(message.len(), 2);
        assert!(message[0].contains("did you mean `timeout`"), "{message:?}");
        assert!(message[1].contains("given twice"), "{message:?}");
    }

    #[test]
    fn a_key_without_a_value_is_an_error() {
        let error = parse(quote!(timeout)).err().unwrap().to_string();
        assert!(error.contains("expected `timeout = …`"), "{error}");
    }

    #[test]
    fn values_of_the_wrong_kind_name_the_expected_form() {
        let options = parse(quote!(on_exit = "cancel", timeout = 5, workers = 0)).unwrap();
        let on_exit = word(&options[0], &["join", "cancel"])
            .unwrap_err()
            .to_string();
        assert!(
            on_exit.contains("expected `on_exit = join | cancel`"),
            "{on_exit}"
        );
        let timeout = duration(&options[1]).err().unwrap().to_string();
        assert!(timeout.contains("takes a string"), "{timeout}");
        let workers = positive_integer(&options[2]).unwrap_err().to_string();
        assert!(workers.contains("at least 1"), "{workers}");
    }
}
