//! Durations in macro arguments (`timeout = "30s"`): parsed and checked at
//! compile time, expanded to constant `Duration`s.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::LitStr;

/// Parses a human-readable duration (`"250ms"`, `"5s"`, `"1m 30s"`), spanning
/// any error on the literal. Zero and unparsable durations are errors, and
/// so are those too large for a `Duration`: `unlimited` says what to write
/// instead when the option has a form for "no limit" ("for no timeout,
/// leave `timeout` out").
pub(crate) fn parse(literal: &LitStr, unlimited: Option<&str>) -> syn::Result<Duration> {
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
        // Also what humantime says of a fraction finer than a nanosecond.
        Err(humantime::DurationError::NumberOverflow)
            if !matches!(
                humantime::parse_duration(&without_fractions(trimmed)),
                Err(humantime::DurationError::NumberOverflow)
            ) =>
        {
            Err(syn::Error::new(
                literal.span(),
                format!(
                    "`{text}` is not a whole number of nanoseconds, the smallest step of a duration; round it"
                ),
            ))
        }
        Err(humantime::DurationError::NumberOverflow) => Err(syn::Error::new(
            literal.span(),
            format!(
                "`{text}` is too large: a duration holds at most about 584 billion years; {}",
                unlimited.unwrap_or("write a shorter one")
            ),
        )),
        Err(_) => Err(syn::Error::new(
            literal.span(),
            format!(
                "`{text}` is not a duration; write a number and a unit, like \"250ms\", \"5s\", \"2m\" or \"1h 30m\""
            ),
        )),
    }
}

/// The duration's text with the fractional part of each number left out
/// (`"1.5ns"` to `"1ns"`): what is left overflows only if it is too large.
fn without_fractions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fraction = false;
    for c in text.chars() {
        match c {
            '.' => in_fraction = true,
            '0'..='9' if in_fraction => {}
            _ => {
                in_fraction = false;
                out.push(c);
            }
        }
    }
    out
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

    fn parse(literal: &LitStr) -> syn::Result<Duration> {
        super::parse(literal, None)
    }

    #[test]
    fn accepts_human_durations() {
        assert_eq!(parse(&lit("250ms")).unwrap(), Duration::from_millis(250));
        assert_eq!(parse(&lit("5s")).unwrap(), Duration::from_secs(5));
        assert_eq!(parse(&lit(" 1m 30s ")).unwrap(), Duration::from_secs(90));
        assert_eq!(parse(&lit("2h")).unwrap(), Duration::from_secs(7200));
        // Huge, but a duration: the runtime takes such a deadline as never.
        assert_eq!(
            parse(&lit("500000000000y")).unwrap(),
            Duration::from_secs(500_000_000_000 * 31_557_600)
        );
    }

    #[test]
    fn too_large_is_not_nonsense_and_names_the_fix() {
        let plain = parse(&lit("600000000000y")).unwrap_err().to_string();
        assert!(plain.contains("`600000000000y` is too large"), "{plain}");
        assert!(plain.contains("write a shorter one"), "{plain}");
        let digits = parse(&lit("99999999999999999999ns"))
            .unwrap_err()
            .to_string();
        assert!(digits.contains("is too large"), "{digits}");
        let fraction = parse(&lit("600000000000.5y")).unwrap_err().to_string();
        assert!(fraction.contains("is too large"), "{fraction}");
        let timeout = super::parse(
            &lit("600000000000y"),
            Some("for no timeout, leave `timeout` out"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            timeout.ends_with("; for no timeout, leave `timeout` out"),
            "{timeout}"
        );
    }

    #[test]
    fn finer_than_a_nanosecond_is_not_too_large() {
        for text in ["1.5ns", "0.0000000001s"] {
            let error = parse(&lit(text)).unwrap_err().to_string();
            assert!(
                error.contains("not a whole number of nanoseconds"),
                "{error}"
            );
        }
        assert_eq!(without_fractions("1.5ns 2.25s"), "1ns 2s");
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
