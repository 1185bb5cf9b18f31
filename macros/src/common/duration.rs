//! Durations in macro arguments (`timeout = "30s"`): parsed and checked at
//! compile time, expanded to constant `Duration`s.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::LitStr;

/// Parses a human-readable duration (`"250ms"`, `"5s"`, `"1m 30s"`), spanning
/// any error on the literal. Zero and unparsable durations are errors.
pub(crate) fn parse(literal: &LitStr) -> syn::Result<Duration> {
    let text = literal.value();
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(syn::Error::new(
            literal.span(),
            format!("`{text}` is negative; a duration is a positive amount of time like \"5s\""),
        ));
    }
    match humantime::parse_duration(trimmed) {
        Ok(duration) if duration.is_zero() => Err(syn::Error::new(
            literal.span(),
            format!("`{text}` is zero; use a positive duration like \"100ms\" or \"5s\""),
        )),
        Ok(duration) => Ok(duration),
        Err(_) => Err(syn::Error::new(
            literal.span(),
            format!(
                "`{text}` is not a duration; write a number and a unit, like \"250ms\", \"5s\", \"2m\" or \"1h 30m\""
            ),
        )),
    }
}

/// A constant `Duration` expression, spanned on the literal it came from.
pub(crate) fn to_tokens(duration: Duration, literal: &LitStr) -> TokenStream {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    quote_spanned! {literal.span()=>
        const { ::core::time::Duration::new(#secs, #nanos) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    fn lit(text: &str) -> LitStr {
        LitStr::new(text, Span::call_site())
    }

    #[test]
    fn accepts_human_durations() {
        assert_eq!(parse(&lit("250ms")).unwrap(), Duration::from_millis(250));
        assert_eq!(parse(&lit("5s")).unwrap(), Duration::from_secs(5));
        assert_eq!(parse(&lit(" 1m 30s ")).unwrap(), Duration::from_secs(90));
        assert_eq!(parse(&lit("2h")).unwrap(), Duration::from_secs(7200));
    }

    #[test]
    fn rejects_zero_negative_and_nonsense_with_a_fix() {
        let zero = parse(&lit("0s")).unwrap_err().to_string();
        assert!(zero.contains("is zero"), "{zero}");
        let negative = parse(&lit("-1s")).unwrap_err().to_string();
        assert!(negative.contains("negative"), "{negative}");
        let parsecs = parse(&lit("5 parsecs")).unwrap_err().to_string();
        assert!(parsecs.contains("not a duration"), "{parsecs}");
        assert!(parsecs.contains("\"5s\""), "names the fix: {parsecs}");
        assert!(parse(&lit("")).is_err());
    }

    #[test]
    fn expands_to_a_constant_duration() {
        let tokens = to_tokens(Duration::from_millis(1500), &lit("1500ms")).to_string();
        assert!(
            tokens.contains(":: core :: time :: Duration :: new (1u64 , 500000000u32)"),
            "{tokens}"
        );
        assert!(tokens.starts_with("const"), "{tokens}");
    }
}
