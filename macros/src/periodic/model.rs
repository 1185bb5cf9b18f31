//! Syntax to a checked model of `#[periodic]`.

use std::time::Duration;

use proc_macro2::Span;
use quote::ToTokens;
use syn::{
    Attribute, Expr, ExprCall, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Pat, ReturnType, Type,
};

use crate::common::options::{self, RawOption};
use crate::common::{Errors, Support, check_async_fn, mentions};

const KEYS: &[&str] = &[
    "every", "overlap", "missed", "first", "jitter", "seed", "timeout", "on_error", "on_stop",
    "name", "crate",
];

/// `overlap = …`
pub(crate) enum OverlapModel {
    Cancel,
    Skip,
    Queue,
    Concurrent(u64),
}

/// How the fn receives `self`, if it is a method.
pub(crate) enum Receiver {
    /// `self`: each run gets a clone of it.
    Value,
    /// `&self`: cloned once when the schedule starts, then once per run.
    Reference,
}

/// `every = …`: a literal checked now, or an expression (in parentheses)
/// evaluated each time the fn is called, which may use its arguments.
pub(crate) enum Every {
    Literal(Duration, LitStr),
    /// The expression, and the span of its parentheses.
    Runtime(Box<Expr>, Span),
}

/// A named argument of the fn.
pub(crate) struct Argument {
    /// Its attributes (`#[cfg(…)]`, lint levels), which go on its copy too:
    /// an argument compiled out has no copy.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) name: Ident,
    /// Its type, when it can be written in an expression: not when it holds
    /// an `impl Trait`, which only an argument position accepts.
    pub(crate) nameable_type: Option<Type>,
}

pub(crate) struct PeriodicFn {
    pub(crate) item: ItemFn,
    pub(crate) every: Every,
    pub(crate) overlap: Option<(OverlapModel, Span)>,
    pub(crate) missed: Option<Ident>,
    pub(crate) first_after: bool,
    pub(crate) jitter: Option<(Duration, LitStr)>,
    pub(crate) seed: Option<u64>,
    pub(crate) timeout: Option<(Duration, LitStr)>,
    pub(crate) on_error_stop: bool,
    /// `on_stop = continue`: only a cancellation ends the schedule.
    pub(crate) on_stop_continue: bool,
    pub(crate) name: LitStr,
    /// The arguments cloned into each run.
    pub(crate) arguments: Vec<Argument>,
    pub(crate) receiver: Option<Receiver>,
    /// The run's return type (`()` when none is written).
    pub(crate) output: Type,
    /// `crate = …`: the path of the runtime crate.
    pub(crate) support: Support,
}

impl PeriodicFn {
    pub(crate) fn new(options: &[RawOption], item: ItemFn, errors: &Errors) -> Option<Self> {
        let mut fatal = !check_async_fn(&item, "periodic", "its body is one run", errors);
        let output = match &item.sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) if is_run_output(ty) => (**ty).clone(),
            ReturnType::Type(_, ty) => {
                errors.error_spanned_by(
                    ty,
                    "a periodic run returns `()` or `Result<(), E>`; return what a run needs to report, nothing else",
                );
                fatal = true;
                syn::parse_quote!(())
            }
        };
        let (arguments, receiver) = arguments(&item, errors, &mut fatal);

        let mut every = None;
        let mut model = PeriodicFn {
            every: Every::Literal(Duration::from_secs(1), LitStr::new("1s", Span::call_site())),
            overlap: None,
            missed: None,
            first_after: false,
            jitter: None,
            seed: None,
            timeout: None,
            on_error_stop: false,
            on_stop_continue: false,
            name: LitStr::new(&item.sig.ident.to_string(), item.sig.ident.span()),
            arguments,
            receiver,
            output,
            support: Support::Tethered,
            item,
        };
        for option in options::check_keys(options, KEYS, errors) {
            match option.key.to_string().as_str() {
                "every" => every = errors.take(every_option(option)),
                "overlap" => model.overlap = errors.take(overlap(option)),
                "missed" => {
                    model.missed = errors.take(options::word(option, &["skip", "burst", "delay"]));
                }
                "first" => {
                    model.first_after = errors
                        .take(options::word(option, &["now", "after"]))
                        .is_some_and(|first| first == "after");
                }
                "jitter" => model.jitter = errors.take(options::duration(option)),
                "seed" => model.seed = errors.take(integer(option)),
                "timeout" => model.timeout = errors.take(options::duration(option)),
                "on_error" => {
                    model.on_error_stop = errors.take(on_error(option)).unwrap_or(false);
                }
                "on_stop" => {
                    model.on_stop_continue = errors.take(on_stop(option)).unwrap_or(false);
                }
                "name" => {
                    if let Some(name) = errors.take(options::string(option, "\"refresh-prices\"")) {
                        model.name = name;
                    }
                }
                "crate" => {
                    if let Some(support) = errors.take(Support::from_option(option)) {
                        model.support = support;
                    }
                }
                _ => {}
            }
        }
        match every {
            Some(every) => model.every = every,
            None if options.iter().any(|option| option.key == "every") => {}
            None => {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    "missing `every = \"…\"`: how often the body runs, like `#[periodic(every = \"5s\")]` (or `every = (expression)` for a period known only at run time)",
                ));
            }
        }
        // Against a period known only at run time, the schedule clamps the
        // jitter below it (see `Periodic::jitter`).
        if let (Some((jitter, literal)), Every::Literal(every, every_text)) =
            (&model.jitter, &model.every)
            && jitter >= every
        {
            errors.error_spanned_by(
                literal,
                format!(
                    "`jitter` must be shorter than `every` ({}), or ticks could swap places",
                    every_text.value()
                ),
            );
        }
        (!fatal).then_some(model)
    }
}

/// `every = "5s"`, or `every = (expression)` for a period known at run time.
/// A literal period is at least a millisecond, the timer's resolution.
fn every_option(option: &RawOption) -> syn::Result<Every> {
    match &option.value {
        Expr::Paren(paren) => Ok(Every::Runtime(
            paren.expr.clone(),
            paren.paren_token.span.join(),
        )),
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => {
            let (every, text) = options::duration(option)?;
            if every < Duration::from_millis(1) {
                return Err(syn::Error::new(
                    text.span(),
                    format!(
                        "`every = \"{}\"` is shorter than a millisecond, but tokio's timer fires at most once a millisecond; use \"1ms\" or more",
                        text.value()
                    ),
                ));
            }
            Ok(Every::Literal(every, text))
        }
        other => Err(syn::Error::new_spanned(
            other,
            "`every` takes a string, like `every = \"5s\"`, or, for a period known only at run time, an expression in parentheses: `every = (config.period)`",
        )),
    }
}

/// `()` or `Result<(), E>` (a type whose last segment is `Result` and whose
/// first argument is `()`).
fn is_run_output(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Path(path) => path.path.segments.last().is_some_and(|segment| {
            segment.ident == "Result"
                && matches!(&segment.arguments, syn::PathArguments::AngleBracketed(arguments)
                    if matches!(arguments.args.first(),
                        Some(syn::GenericArgument::Type(Type::Tuple(unit))) if unit.elems.is_empty()))
        }),
        _ => false,
    }
}

fn arguments(
    item: &ItemFn,
    errors: &Errors,
    fatal: &mut bool,
) -> (Vec<Argument>, Option<Receiver>) {
    let mut names = Vec::new();
    let mut receiver = None;
    for input in &item.sig.inputs {
        match input {
            FnArg::Receiver(this) if this.mutability.is_some() && this.reference.is_some() => {
                errors.error_spanned_by(
                    this,
                    "a periodic method cannot take `&mut self`: runs may overlap, and each gets its own copy; take `&self` or `self` (with `Self: Clone`)",
                );
                *fatal = true;
            }
            FnArg::Receiver(this) => {
                receiver = Some(if this.reference.is_some() {
                    Receiver::Reference
                } else {
                    Receiver::Value
                });
            }
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pattern) if pattern.by_ref.is_none() && pattern.subpat.is_none() => {
                    let has_impl = mentions(
                        &typed.ty.to_token_stream(),
                        &Ident::new("impl", Span::call_site()),
                    );
                    names.push(Argument {
                        attrs: typed.attrs.clone(),
                        name: pattern.ident.clone(),
                        nameable_type: (!has_impl).then(|| (*typed.ty).clone()),
                    });
                }
                other => {
                    errors.error_spanned_by(
                        other,
                        "give this argument a plain name: each run gets its own copy of it",
                    );
                    *fatal = true;
                }
            },
        }
    }
    (names, receiver)
}

fn overlap(option: &RawOption) -> syn::Result<(OverlapModel, Span)> {
    const FORMS: &str = "expected `overlap = cancel | skip | queue | concurrent(N)`";
    let span = syn::spanned::Spanned::span(&option.value);
    match &option.value {
        Expr::Call(ExprCall { func, args, .. }) => {
            let is_concurrent =
                matches!(&**func, Expr::Path(path) if path.path.is_ident("concurrent"));
            if !is_concurrent {
                return Err(syn::Error::new_spanned(func, FORMS));
            }
            let limit = match args.iter().collect::<Vec<_>>().as_slice() {
                [
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(number),
                        ..
                    }),
                ] => number,
                _ => {
                    return Err(syn::Error::new_spanned(
                        args,
                        "expected `concurrent(N)` with N a whole number of runs, like `concurrent(4)`",
                    ));
                }
            };
            match limit.base10_parse::<u64>() {
                Ok(0) => Err(syn::Error::new_spanned(
                    limit,
                    "`concurrent(0)` would never run; use `concurrent(1)` or more (or `skip`)",
                )),
                Ok(n) => Ok((OverlapModel::Concurrent(n), span)),
                Err(_) => Err(syn::Error::new_spanned(
                    limit,
                    "expected a whole number of runs",
                )),
            }
        }
        Expr::Path(path) => match path.path.get_ident().map(ToString::to_string).as_deref() {
            Some("cancel") => Ok((OverlapModel::Cancel, span)),
            Some("skip") => Ok((OverlapModel::Skip, span)),
            Some("queue") => Ok((OverlapModel::Queue, span)),
            _ => Err(syn::Error::new_spanned(
                path,
                format!("unknown overlap policy `{}`; {FORMS}", written(path)),
            )),
        },
        other => Err(syn::Error::new_spanned(other, FORMS)),
    }
}

/// `on_error = continue | stop`. Returns whether it is `stop`.
fn on_error(option: &RawOption) -> syn::Result<bool> {
    continue_or(option, "stop", "continue | stop").map(|is_continue| !is_continue)
}

/// `on_stop = end | continue`. Returns whether it is `continue`.
fn on_stop(option: &RawOption) -> syn::Result<bool> {
    continue_or(option, "end", "end | continue")
}

/// `key = continue` or `key = other`; returns whether it is `continue`.
/// (`continue` is a keyword, so it arrives as a `continue` expression,
/// which `options::word` cannot take.)
fn continue_or(option: &RawOption, other: &str, forms: &str) -> syn::Result<bool> {
    let key = &option.key;
    match &option.value {
        Expr::Continue(_) => Ok(true),
        Expr::Path(path) if path.path.is_ident(other) => Ok(false),
        value => Err(syn::Error::new_spanned(
            value,
            format!(
                "unknown `{key}` value `{}`; expected `{key} = {forms}`",
                written(value)
            ),
        )),
    }
}

/// A value as written, for a message: its tokens without the spaces that
/// printing them adds.
fn written(value: &impl ToTokens) -> String {
    value.to_token_stream().to_string().replace(' ', "")
}

fn integer(option: &RawOption) -> syn::Result<u64> {
    match &option.value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(number),
            ..
        }) => number.base10_parse::<u64>(),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "`{}` takes a whole number, like `{} = 42`",
                option.key, option.key
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn every(tokens: proc_macro2::TokenStream) -> syn::Result<Every> {
        let options = options::parse(tokens).unwrap();
        every_option(&options[0])
    }

    #[test]
    fn a_literal_period_is_at_least_a_millisecond() {
        let error = every(quote!(every = "999us")).err().unwrap().to_string();
        assert!(error.contains("shorter than a millisecond"), "{error}");
        assert!(error.contains("tokio's timer"), "{error}");
        assert!(matches!(
            every(quote!(every = "1ms")),
            Ok(Every::Literal(period, _)) if period == Duration::from_millis(1)
        ));
        assert!(every(quote!(every = "1500us")).is_ok());
        // Known only at run time: the schedule takes care of it.
        assert!(every(quote!(every = (period))).is_ok());
    }
}
