//! Syntax to a checked model of `supervise!`: every value read, every
//! mistake recorded. The model is built whatever the mistakes, from what
//! was right, so that the expansion still checks the user's expressions.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprClosure, Ident, Lit, LitStr, Meta, Pat, PatType};

use super::parse::{Body, Child, Entry, Input, Key, Reader, Setting, suggest};
use crate::common::{Errors, Support, duration};

const STRATEGIES: &[&str] = &["one_for_one", "one_for_all", "rest_for_one"];
const RESTARTS: &[&str] = &["permanent", "transient", "temporary"];
const CHILD_OPTIONS: &[&str] = &["backoff", "factor", "jitter", "shutdown"];
const CHILD_SHUTDOWNS: &[&str] = &["brutal", "infinity"];

const INTENSITY_FORM: &str = "expected `intensity: 5 within \"10s\"`: at most 5 restarts within any 10 seconds, past which the supervisor fails";
const SHUTDOWN_FORM: &str = "expected `shutdown: grace \"5s\" then cancel \"10s\"` (or `grace \"5s\"` alone; a duration known at run time goes in parentheses: `grace (config.grace)`): how long children may finish after being asked to stop, then how long they get once cancelled";
const BACKOFF_FORM: &str = "expected `backoff \"100ms\"..\"5s\"` (the first delay, then the longest) or `backoff none` (restart at once)";
const CHILD_OPTION_FORM: &str = "accepted: `permanent`, `transient`, `temporary`, `backoff \"100ms\"..\"5s\"`, `backoff none`, `factor 2`, `jitter 0.1`, `shutdown \"5s\"`, `shutdown brutal`, `shutdown infinity`";
const CHILD_SHUTDOWN_FORM: &str = "expected `shutdown \"5s\"` (asked to stop, then cancelled after 5 s), `shutdown brutal` (cancelled at once), `shutdown infinity` (waited for as long as it takes) or, for a duration known only at run time, `shutdown (config.shutdown)`";

/// `strategy: …`
pub(crate) enum StrategyModel {
    OneForOne,
    OneForAll,
    RestForOne,
}

/// A child's restart policy.
pub(crate) enum RestartModel {
    Permanent,
    Transient,
    Temporary,
}

pub(crate) struct Supervise {
    /// The path of the runtime crate.
    pub(crate) support: Support,
    pub(crate) name: Option<LitStr>,
    pub(crate) strategy: Option<(StrategyModel, Span)>,
    /// The most restarts, where it was written, and the window.
    pub(crate) intensity: Option<(u32, Span, (Duration, LitStr))>,
    pub(crate) grace: Option<Timing>,
    pub(crate) cancel: Option<Timing>,
    pub(crate) seed: Option<(u64, Span)>,
    pub(crate) children: Vec<ChildModel>,
    pub(crate) body: BodyModel,
}

pub(crate) struct ChildModel {
    /// Its `#[cfg(…)]` attributes: a child compiled out is not declared.
    pub(crate) cfgs: Vec<Attribute>,
    /// `child`, where the child's location points.
    pub(crate) keyword: Ident,
    pub(crate) name: LitStr,
    pub(crate) restart: Option<(RestartModel, Span)>,
    pub(crate) backoff: BackoffModel,
    /// `shutdown …`: how the child is stopped; absent, the supervisor's
    /// shutdown phases decide.
    pub(crate) shutdown: Option<ChildShutdownModel>,
    /// What makes the child's future.
    pub(crate) expr: Expr,
}

/// A child's `shutdown …`.
pub(crate) enum ChildShutdownModel {
    /// `shutdown brutal`: cancelled at once.
    Brutal(Span),
    /// `shutdown infinity`: waited for as long as it takes.
    Infinity(Span),
    /// `shutdown "5s"` or `shutdown (expression)`: asked to stop, then
    /// cancelled after that long.
    Timeout(Timing),
}

/// `backoff …`, `factor …` and `jitter …`; all absent for the default.
#[derive(Default)]
pub(crate) struct BackoffModel {
    pub(crate) delays: Option<Delays>,
    pub(crate) factor: Option<(f64, Span)>,
    pub(crate) jitter: Option<(f64, Span)>,
}

pub(crate) enum Delays {
    /// `backoff none`
    None(Span),
    /// `backoff "initial".."max"`
    Range {
        initial: (Duration, LitStr),
        max: (Duration, LitStr),
    },
}

pub(crate) enum BodyModel {
    /// No body: the supervisor runs until it is shut down, its parent stops
    /// it or it fails.
    Forever,
    /// `body |sv| …`, made `async` and its argument typed.
    Closure(Box<ExprClosure>),
    /// A body that was rejected (with an error): a stand-in of any type.
    Rejected(Span),
}

impl Supervise {
    pub(crate) fn new(input: Input, errors: &Errors) -> Self {
        let mut model = Supervise {
            support: input.support,
            name: None,
            strategy: None,
            intensity: None,
            grace: None,
            cancel: None,
            seed: None,
            children: Vec::new(),
            body: BodyModel::Forever,
        };
        let mut settings: Vec<Key> = Vec::new();
        // Each child's name, its place, and its `#[cfg(…)]` as written.
        let mut names: Vec<(String, usize, Option<String>)> = Vec::new();
        let mut declared = 0;
        let mut body: Option<Ident> = None;
        let mut supervises = false;
        for entry in input.entries {
            match entry {
                Entry::Setting(setting) => {
                    let key = setting.key.name();
                    reject_attributes(&setting.attrs, &format!("`{key}: …`"), errors);
                    if settings.contains(&setting.key) {
                        let key = setting.key.name();
                        errors.error_spanned_by(
                            &setting.ident,
                            format!("`{key}` is given twice; keep one `{key}: …`"),
                        );
                        continue;
                    }
                    settings.push(setting.key);
                    model.setting(&setting, errors);
                }
                Entry::Child(child) => {
                    supervises = true;
                    declared += 1;
                    let name = child.name.value();
                    let cfg = cfg_key(&child.attrs);
                    // Children under different `#[cfg(…)]`s may be the same
                    // child in two builds.
                    let clash = names.iter().find(|(other, _, other_cfg)| {
                        *other == name
                            && (cfg.is_none() || other_cfg.is_none() || *other_cfg == cfg)
                    });
                    match clash {
                        Some((_, first, _)) => errors.error_spanned_by(
                            &child.name,
                            format!(
                                "two children are named {name:?}: the {} child and this one, the {}; \
                                 give each child a name of its own, which tells it apart in logs, errors and the task tree",
                                ordinal(*first),
                                ordinal(declared),
                            ),
                        ),
                        None => names.push((name, declared, cfg)),
                    }
                    if let Some(child) = ChildModel::new(child, errors) {
                        model.children.push(child);
                    }
                }
                Entry::Body(Body {
                    attrs,
                    keyword,
                    expr,
                }) => {
                    supervises = true;
                    reject_attributes(&attrs, "the body", errors);
                    if body.is_some() {
                        errors.error_spanned_by(
                            &keyword,
                            "`body` is given twice; a supervisor has one body: keep one `body |sv| { … }`",
                        );
                        continue;
                    }
                    model.body = body_model(&keyword, expr, &model.support, errors);
                    body = Some(keyword);
                }
                Entry::Broken {
                    error,
                    supervises: broken,
                } => {
                    errors.push(error);
                    supervises |= broken;
                }
            }
        }
        if !supervises {
            errors.push(syn::Error::new(
                Span::call_site(),
                "a supervisor needs something to supervise: add a child, like `child \"worker\" => worker(db.clone())`, or a `body |sv| { … }`",
            ));
        }
        model
    }

    fn setting(&mut self, setting: &Setting, errors: &Errors) {
        let mut reader = Reader::new(&setting.value, setting.ident.span());
        let reader = &mut reader;
        let key = setting.key;
        match key {
            Key::Name => self.name = errors.take(read_all(reader, key, name)),
            Key::Strategy => self.strategy = errors.take(read_all(reader, key, strategy)),
            Key::Intensity => self.intensity = errors.take(read_all(reader, key, intensity)),
            Key::Shutdown => {
                if let Some((grace, cancel)) = errors.take(read_all(reader, key, shutdown)) {
                    self.grace = grace;
                    self.cancel = cancel;
                }
            }
            Key::Seed => self.seed = errors.take(read_all(reader, key, seed)),
        }
    }
}

/// The `#[cfg(…)]` attributes of a child, as written, to compare children;
/// `None` without any.
fn cfg_key(attrs: &[Attribute]) -> Option<String> {
    let cfgs: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .map(|attr| attr.to_token_stream().to_string())
        .collect();
    (!cfgs.is_empty()).then(|| cfgs.join(" "))
}

/// An attribute where none can go: only a child takes one, `#[cfg(…)]`.
/// Doc comments are comments, on any entry.
fn reject_attributes(attrs: &[Attribute], entry: &str, errors: &Errors) {
    for attr in attrs.iter().filter(|attr| !attr.path().is_ident("doc")) {
        errors.error_spanned_by(
            attr,
            format!(
                "`{}` cannot go on {entry}: only a child takes an attribute, `#[cfg(…)]`; remove it",
                attribute_form(attr)
            ),
        );
    }
}

/// An attribute as a message names it: `#[allow(…)]`, `#[doc = …]`, `#[inline]`.
fn attribute_form(attr: &Attribute) -> String {
    let path = attr.path().to_token_stream().to_string().replace(' ', "");
    match &attr.meta {
        Meta::Path(_) => format!("#[{path}]"),
        Meta::List(_) => format!("#[{path}(…)]"),
        Meta::NameValue(_) => format!("#[{path} = …]"),
    }
}

/// Reads a whole setting's value with `read`; tokens left over are an error.
fn read_all<T>(
    reader: &mut Reader<'_>,
    key: Key,
    read: fn(&mut Reader<'_>) -> syn::Result<T>,
) -> syn::Result<T> {
    let value = read(reader)?;
    if !reader.is_done() {
        return Err(reader.error(format!(
            "unexpected token after the value of `{}`; expected `{}`",
            key.name(),
            key.example()
        )));
    }
    Ok(value)
}

fn name(reader: &mut Reader<'_>) -> syn::Result<LitStr> {
    reader
        .string()
        .ok_or_else(|| reader.whole_error("`name` takes a string, like `name: \"svc\"`"))
}

fn strategy(reader: &mut Reader<'_>) -> syn::Result<(StrategyModel, Span)> {
    let Some(word) = reader.any_word() else {
        return Err(
            reader.whole_error("expected `strategy: one_for_one | one_for_all | rest_for_one`")
        );
    };
    let strategy = match word.to_string().as_str() {
        "one_for_one" => StrategyModel::OneForOne,
        "one_for_all" => StrategyModel::OneForAll,
        "rest_for_one" => StrategyModel::RestForOne,
        other => {
            let message = match suggest(other, STRATEGIES) {
                Some(suggestion) => format!(
                    "unknown strategy `{other}`; did you mean `{suggestion}`? (accepted: `one_for_one`, `one_for_all`, `rest_for_one`)"
                ),
                None => format!(
                    "unknown strategy `{other}`; expected `one_for_one` (restart only the child that ended), `one_for_all` \
                     (restart every child) or `rest_for_one` (restart it and the children declared after it)"
                ),
            };
            return Err(syn::Error::new(word.span(), message));
        }
    };
    Ok((strategy, word.span()))
}

fn intensity(reader: &mut Reader<'_>) -> syn::Result<(u32, Span, (Duration, LitStr))> {
    let count = match reader.literal() {
        Some(Lit::Int(count)) => count,
        _ => return Err(reader.whole_error(INTENSITY_FORM)),
    };
    let restarts = match count.base10_parse::<u32>() {
        Ok(0) => {
            return Err(syn::Error::new(
                count.span(),
                "intensity must be at least 1; to never restart a child, make it `temporary`",
            ));
        }
        Ok(restarts) => restarts,
        Err(_) => {
            return Err(syn::Error::new(
                count.span(),
                "`intensity` counts restarts: a whole number from 1 to 4294967295",
            ));
        }
    };
    if reader.word("within").is_none() {
        return Err(reader.error(format!(
            "expected `within` and a duration: `intensity: {restarts} within \"10s\"`"
        )));
    }
    let window = duration_after(reader, "within", "10s")?;
    Ok((restarts, count.span(), window))
}

/// A shutdown duration: a literal checked now, or an expression (in
/// parentheses) known only at run time, such as a command-line flag.
pub(crate) enum Timing {
    Literal(Duration, LitStr),
    Runtime(Box<syn::Expr>, proc_macro2::Span),
}

type Shutdown = (Option<Timing>, Option<Timing>);

/// The shutdown duration after `word`: a literal, or `(expression)`.
fn timing_after(reader: &mut Reader<'_>, word: &str, example: &str) -> syn::Result<Timing> {
    if let Some(group) = reader.parenthesised() {
        // Checked here so that a damaged expression is reported inside its
        // parentheses instead of swallowing the rest of the block.
        let expr = syn::parse2::<syn::Expr>(group.stream()).map_err(|_| {
            syn::Error::new(
                group.span(),
                format!(
                    "expected an expression of type `Duration` in the parentheses: `{word} (config.{word})`"
                ),
            )
        })?;
        return Ok(Timing::Runtime(Box::new(expr), group.span()));
    }
    duration_after(reader, word, example).map(|(duration, text)| Timing::Literal(duration, text))
}

fn shutdown(reader: &mut Reader<'_>) -> syn::Result<Shutdown> {
    if reader.word("grace").is_some() {
        let grace = timing_after(reader, "grace", "5s")?;
        if reader.is_done() {
            return Ok((Some(grace), None));
        }
        if reader.word("then").is_none() {
            return Err(reader.error(
                "expected `then cancel \"10s\"` after the grace: `shutdown: grace \"5s\" then cancel \"10s\"`",
            ));
        }
        if reader.word("cancel").is_none() {
            return Err(reader.error(SHUTDOWN_FORM));
        }
        let cancel = timing_after(reader, "cancel", "10s")?;
        return Ok((Some(grace), Some(cancel)));
    }
    if reader.word("cancel").is_some() {
        let cancel = timing_after(reader, "cancel", "10s")?;
        return Ok((None, Some(cancel)));
    }
    Err(reader.whole_error(SHUTDOWN_FORM))
}

/// The duration after `word`, parsed and checked (zero is an error).
fn duration_after(
    reader: &mut Reader<'_>,
    word: &str,
    example: &str,
) -> syn::Result<(Duration, LitStr)> {
    let Some(text) = reader.string() else {
        return Err(reader.error(format!(
            "expected a duration after `{word}`, like `{word} \"{example}\"`"
        )));
    };
    duration::parse(&text, None).map(|parsed| (parsed, text))
}

fn seed(reader: &mut Reader<'_>) -> syn::Result<(u64, Span)> {
    match reader.literal() {
        Some(Lit::Int(seed)) => match seed.base10_parse::<u64>() {
            Ok(value) => Ok((value, seed.span())),
            Err(_) => Err(syn::Error::new(
                seed.span(),
                "`seed` takes a whole number from 0 to 18446744073709551615",
            )),
        },
        _ => Err(reader.whole_error("`seed` takes a whole number, like `seed: 42`")),
    }
}

impl ChildModel {
    /// The checked child, or `None` when its expression cannot be used.
    fn new(child: Child, errors: &Errors) -> Option<Self> {
        let Child {
            attrs,
            keyword,
            name,
            options,
            expr,
        } = child;
        let mut cfgs = Vec::new();
        for attr in attrs {
            if attr.path().is_ident("cfg") {
                cfgs.push(attr);
            } else if attr.path().is_ident("doc") {
                // A doc comment (`/// Restarts on failure.`) is a comment.
            } else {
                errors.error_spanned_by(
                    &attr,
                    format!(
                        "`{}` cannot go on a child: a child takes `#[cfg(…)]`, which declares it only in the builds the condition selects; remove it",
                        attribute_form(&attr)
                    ),
                );
            }
        }
        let mut restart: Option<(RestartModel, Ident)> = None;
        let mut backoff = BackoffModel::default();
        let mut shutdown: Option<ChildShutdownModel> = None;
        let mut shutdown_given = false;
        // The backoff options given, for the checks between them.
        let mut given: Vec<Ident> = Vec::new();
        for option in &options {
            let mut reader = Reader::new(option, name.span());
            let Some(word) = reader.any_word() else {
                errors.push(reader.error(format!("expected a child option; {CHILD_OPTION_FORM}")));
                continue;
            };
            let value = &option[1..];
            let mut reader = Reader::new(value, word.span());
            let text = word.to_string();
            if let Some(policy) = restart_policy(&text) {
                if !value.is_empty() {
                    errors.push(reader.whole_error(format!(
                        "`{text}` takes no value; a child's options are separated by commas, like `({text}, backoff \"1s\"..\"30s\")`"
                    )));
                } else if let Some((_, first)) = &restart {
                    errors.error_spanned_by(
                        &word,
                        format!(
                            "a child has one restart policy, and `{first}` is already given; keep one of `{first}` and `{text}`"
                        ),
                    );
                } else {
                    restart = Some((policy, word));
                }
                continue;
            }
            if text == "shutdown" {
                if shutdown_given {
                    errors.error_spanned_by(
                        &word,
                        "`shutdown` is given twice; keep one `shutdown …`",
                    );
                } else {
                    shutdown_given = true;
                    shutdown = errors.take(read_child_option(&mut reader, &text, child_shutdown));
                }
                continue;
            }
            if !CHILD_OPTIONS.contains(&text.as_str()) {
                errors.error_spanned_by(&word, unknown_child_option(&text, value.is_empty()));
                continue;
            }
            if given.contains(&word) {
                errors.error_spanned_by(
                    &word,
                    format!("`{text}` is given twice; keep one `{text} …`"),
                );
                continue;
            }
            let read = match text.as_str() {
                "backoff" => errors
                    .take(read_child_option(&mut reader, &text, delays))
                    .map(|delays| backoff.delays = Some(delays)),
                "factor" => errors
                    .take(read_child_option(&mut reader, &text, factor))
                    .map(|factor| backoff.factor = Some((factor, word.span()))),
                _ => errors
                    .take(read_child_option(&mut reader, &text, jitter))
                    .map(|jitter| backoff.jitter = Some((jitter, word.span()))),
            };
            if read.is_some() {
                given.push(word);
            }
        }
        if let Some(Delays::None(_)) = &backoff.delays {
            for word in given.iter().filter(|word| *word != "backoff") {
                errors.error_spanned_by(
                    word,
                    format!(
                        "`{word}` has no effect with `backoff none`, which restarts at once; remove one of them"
                    ),
                );
            }
        }
        if let Some((RestartModel::Temporary, _)) = &restart {
            for word in &given {
                errors.error_spanned_by(
                    word,
                    format!(
                        "a `temporary` child is never restarted, so `{word}` has no effect; remove it, or make the child `transient` or `permanent`"
                    ),
                );
            }
        }
        if let Expr::Closure(closure) = &expr {
            let ExprClosure {
                asyncness,
                capture,
                or1_token,
                inputs,
                or2_token,
                ..
            } = closure;
            errors.error_spanned_by(
                quote!(#asyncness #capture #or1_token #inputs #or2_token),
                "a child is the expression that makes its future, evaluated again on every restart: \
                 write `=> worker(db.clone())`, not a closure",
            );
            return None;
        }
        Some(ChildModel {
            cfgs,
            keyword,
            name,
            restart: restart.map(|(policy, word)| (policy, word.span())),
            backoff,
            shutdown,
            expr,
        })
    }
}

fn restart_policy(word: &str) -> Option<RestartModel> {
    Some(match word {
        "permanent" => RestartModel::Permanent,
        "transient" => RestartModel::Transient,
        "temporary" => RestartModel::Temporary,
        _ => return None,
    })
}

fn unknown_child_option(word: &str, bare: bool) -> String {
    if let Some(suggestion) = suggest(word, RESTARTS) {
        return format!(
            "unknown restart policy `{word}`; did you mean `{suggestion}`? (accepted: `permanent`, `transient`, `temporary`)"
        );
    }
    if let Some(suggestion) = suggest(word, CHILD_OPTIONS) {
        return format!(
            "unknown child option `{word}`; did you mean `{suggestion}`? ({CHILD_OPTION_FORM})"
        );
    }
    if bare {
        format!(
            "unknown restart policy `{word}`; expected `permanent` (always restarted), `transient` \
             (restarted when it fails) or `temporary` (never restarted)"
        )
    } else {
        format!("unknown child option `{word}`; {CHILD_OPTION_FORM}")
    }
}

/// Reads a whole child option's value with `read`.
fn read_child_option<T>(
    reader: &mut Reader<'_>,
    word: &str,
    read: fn(&mut Reader<'_>) -> syn::Result<T>,
) -> syn::Result<T> {
    let value = read(reader)?;
    if !reader.is_done() {
        return Err(reader.error(format!(
            "unexpected token after the value of `{word}`; separate a child's options with commas"
        )));
    }
    Ok(value)
}

fn delays(reader: &mut Reader<'_>) -> syn::Result<Delays> {
    if let Some(none) = reader.word("none") {
        return Ok(Delays::None(none.span()));
    }
    let Some(initial) = reader.string() else {
        return Err(reader.whole_error(BACKOFF_FORM));
    };
    if !(reader.punct('.', true) && reader.punct('.', false)) {
        return Err(reader.error(BACKOFF_FORM));
    }
    if reader.punct('=', false) {
        return Err(reader.whole_error(
            "write `..` between the two delays, not `..=`: the longest delay is always included",
        ));
    }
    let Some(max) = reader.string() else {
        return Err(reader.error(BACKOFF_FORM));
    };
    if is_zero(&initial) {
        return Err(syn::Error::new(
            initial.span(),
            format!(
                "`{}` is zero, but a backoff waits before each restart; to restart at once, write `backoff none`",
                initial.value()
            ),
        ));
    }
    let first = duration::parse(&initial, None)?;
    let longest = duration::parse(&max, None)?;
    if first > longest {
        return Err(reader.whole_error(format!(
            "the backoff starts at `{}`, after its longest delay `{}`; write the first delay first: `backoff {:?}..{:?}`",
            initial.value(),
            max.value(),
            max.value(),
            initial.value(),
        )));
    }
    Ok(Delays::Range {
        initial: (first, initial),
        max: (longest, max),
    })
}

/// A child's `shutdown …`: `brutal`, `infinity`, a duration, or a duration
/// known at run time in parentheses.
fn child_shutdown(reader: &mut Reader<'_>) -> syn::Result<ChildShutdownModel> {
    if let Some(word) = reader.any_word() {
        return match word.to_string().as_str() {
            "brutal" => Ok(ChildShutdownModel::Brutal(word.span())),
            "infinity" => Ok(ChildShutdownModel::Infinity(word.span())),
            other => {
                let message = match suggest(other, CHILD_SHUTDOWNS) {
                    Some(suggestion) => format!(
                        "unknown `shutdown` value `{other}`; did you mean `{suggestion}`? ({CHILD_SHUTDOWN_FORM})"
                    ),
                    None => format!("unknown `shutdown` value `{other}`; {CHILD_SHUTDOWN_FORM}"),
                };
                Err(syn::Error::new(word.span(), message))
            }
        };
    }
    if reader.is_done() {
        return Err(reader.whole_error(CHILD_SHUTDOWN_FORM));
    }
    if reader.peek_parenthesised() {
        return timing_after(reader, "shutdown", "5s").map(ChildShutdownModel::Timeout);
    }
    let Some(text) = reader.string() else {
        return Err(reader.error(CHILD_SHUTDOWN_FORM));
    };
    if is_zero(&text) {
        return Err(syn::Error::new(
            text.span(),
            format!(
                "`{}` is zero, which leaves the child no time to stop; to cancel it at once, write `shutdown brutal`",
                text.value()
            ),
        ));
    }
    let timeout = duration::parse(
        &text,
        Some("to wait for the child as long as it takes, write `shutdown infinity`"),
    )?;
    Ok(ChildShutdownModel::Timeout(Timing::Literal(timeout, text)))
}

/// Whether a duration literal reads as zero (`"0s"`, `"0ms"`).
fn is_zero(text: &LitStr) -> bool {
    humantime::parse_duration(text.value().trim()).is_ok_and(|parsed| parsed.is_zero())
}

/// A number literal, as an `f64`, or `None` if something else comes next.
/// A leading `-` is read, and returned as a negative number.
fn number(reader: &mut Reader<'_>) -> Option<f64> {
    let negative = reader.punct('-', false);
    let value = match reader.literal()? {
        Lit::Int(number) => number.base10_parse::<f64>().ok()?,
        Lit::Float(number) => number.base10_parse::<f64>().ok()?,
        _ => return None,
    };
    Some(if negative { -value } else { value })
}

fn factor(reader: &mut Reader<'_>) -> syn::Result<f64> {
    const MESSAGE: &str = "`factor` must be a number of at least 1: it multiplies the delay after each consecutive restart; like `factor 2` or `factor 1.5`";
    match number(reader) {
        Some(factor) if factor.is_finite() && factor >= 1.0 => Ok(factor),
        _ => Err(reader.whole_error(MESSAGE)),
    }
}

fn jitter(reader: &mut Reader<'_>) -> syn::Result<f64> {
    const MESSAGE: &str = "`jitter` must be a number from 0.0 to 1.0: the random fraction of each delay; like `jitter 0.1`";
    match number(reader) {
        Some(jitter) if (0.0..=1.0).contains(&jitter) => Ok(jitter),
        _ => Err(reader.whole_error(MESSAGE)),
    }
}

/// The body: a closure of one argument, made `async`, its argument typed.
fn body_model(keyword: &Ident, expr: Expr, support: &Support, errors: &Errors) -> BodyModel {
    let mut closure = match expr {
        Expr::Closure(closure) => closure,
        other => {
            errors.error_spanned_by(
                keyword,
                "the body is a closure that takes the supervisor: write `body |sv| { … }` (or `body |_| …`)",
            );
            return BodyModel::Rejected(other.span());
        }
    };
    if closure.inputs.len() != 1 {
        let ExprClosure {
            or1_token,
            inputs,
            or2_token,
            ..
        } = &closure;
        errors.error_spanned_by(
            quote!(#or1_token #inputs #or2_token),
            "the body takes one argument, the supervisor: write `body |sv| { … }` (or `body |_| …`)",
        );
        return BodyModel::Rejected(closure.span());
    }
    if closure.asyncness.is_none() {
        closure.asyncness = Some(syn::Token![async](closure.or1_token.span));
    }
    for input in closure.inputs.iter_mut() {
        if !matches!(input, Pat::Type(_)) {
            let pat = input.clone();
            let span = pat.span();
            let support = support.at(span);
            let ty: TokenStream = quote::quote_spanned!(span=> &#support::Supervisor);
            *input = Pat::Type(PatType {
                attrs: Vec::new(),
                pat: Box::new(pat),
                colon_token: syn::Token![:](span),
                ty: Box::new(syn::Type::Verbatim(ty)),
            });
        }
    }
    BodyModel::Closure(Box::new(closure))
}

/// `1st`, `2nd`, `3rd`, `4th`… `11th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn messages(tokens: TokenStream) -> Vec<String> {
        let errors = Errors::new();
        let input = parse::parse(tokens);
        let _model = Supervise::new(input, &errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_the_whole_grammar() {
        let found = messages(quote! {
            name: "svc",
            strategy: rest_for_one,
            intensity: 3 within "1m",
            shutdown: grace "1s" then cancel "2s",
            seed: 7,
            child "ingest" (permanent, backoff "100ms".."5s", factor 2, jitter 0.1) => ingest(rx.clone()),
            child "janitor" (transient) => janitor(db.clone()),
            child "quick" (backoff none) => quick(),
            child "once" => one_shot::<A, B>(),
            body |sv| { serve(listener, sv).await },
        });
        assert!(found.is_empty(), "{found:?}");
        assert!(messages(quote!(child "a" => a())).is_empty());
        assert!(messages(quote!(body move |_| async_work().await,)).is_empty());
    }

    #[test]
    fn reports_every_broken_entry_and_goes_on() {
        let found = messages(quote! {
            strategi: one_for_one,
            child "a" (forever) => a(),
            child "a" => || a(),
            intensity: 0 within "10s",
            child "b" (transient) b(),
            body |sv| { sv },
            body |_| {},
        });
        assert_eq!(found.len(), 7, "{found:?}");
        assert!(found[0].contains("did you mean `strategy`"), "{found:?}");
        assert!(
            found[1].contains("unknown restart policy `forever`"),
            "{found:?}"
        );
        assert!(
            found[2].contains("two children are named \"a\""),
            "{found:?}"
        );
        assert!(found[3].contains("not a closure"), "{found:?}");
        assert!(found[4].contains("at least 1"), "{found:?}");
        assert!(found[5].contains("expected `=>`"), "{found:?}");
        assert!(found[6].contains("`body` is given twice"), "{found:?}");
    }

    #[test]
    fn needs_a_child_or_a_body() {
        let found = messages(quote!(name: "idle"));
        assert!(
            found[0].contains("needs something to supervise"),
            "{found:?}"
        );
        let found = messages(TokenStream::new());
        assert!(
            found[0].contains("needs something to supervise"),
            "{found:?}"
        );
        // A misspelt child is not reported twice.
        let found = messages(quote!(chlid "a" => a()));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("did you mean `child`"), "{found:?}");
    }

    #[test]
    fn checks_child_options() {
        let found = messages(quote! {
            child "a" (backoff "0s".."1s") => a(),
            child "b" (backoff "5s".."1s") => b(),
            child "c" (backoff none, factor 2) => c(),
            child "d" (factor 0.5, jitter 2.0) => d(),
            child "e" (temporary, backoff "1s".."2s") => e(),
            child "f" (permanent, transient) => f(),
            child "g" (Transient) => g(),
        });
        let expected = [
            "write `backoff none`",
            "after its longest delay",
            "no effect with `backoff none`",
            "`factor` must be a number of at least 1",
            "`jitter` must be a number from 0.0 to 1.0",
            "never restarted",
            "one restart policy",
            "did you mean `transient`",
        ];
        assert_eq!(found.len(), expected.len(), "{found:?}");
        for (message, expected) in found.iter().zip(expected) {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_child_takes_a_shutdown_of_its_own() {
        let found = messages(quote! {
            child "a" (shutdown "2s") => a(),
            child "b" (shutdown brutal) => b(),
            child "c" (temporary, shutdown infinity) => c(),
            child "d" (backoff none, shutdown (config.grace * 2)) => d(),
        });
        assert!(found.is_empty(), "{found:?}");
        let output = super::super::expand(quote! {
            child "a" (shutdown "2s") => a(),
            child "b" (shutdown brutal) => b(),
            child "c" (shutdown infinity) => c(),
            child "d" (shutdown (grace)) => d(),
        })
        .to_string();
        for expected in [
            ". shutdown (:: tethered :: ChildShutdown :: Timeout (const { :: core :: time :: Duration :: new (2u64 , 0u32) }))",
            ". shutdown (:: tethered :: ChildShutdown :: Brutal)",
            ". shutdown (:: tethered :: ChildShutdown :: Infinity)",
            ". shutdown (:: tethered :: ChildShutdown :: Timeout ({ let duration : :: core :: time :: Duration = grace ; duration }))",
        ] {
            assert!(output.contains(expected), "{expected} in {output}");
        }
    }

    #[test]
    fn checks_a_childs_shutdown() {
        let found = messages(quote! {
            child "a" (shutdown forever) => a(),
            child "b" (shutdown) => b(),
            child "c" (shutdown "1s", shutdown brutal) => c(),
            child "d" (shutdown "5 parsecs") => d(),
            child "e" (shutdown "0s") => e(),
            child "f" (shutdown brutl) => f(),
            child "g" (shutdown "1s" "2s") => g(),
            child "h" (shutdown "600000000000y") => h(),
            child "i" (shutdwn "1s") => i(),
            child "j" (shutdown 5) => j(),
        });
        let expected = [
            "unknown `shutdown` value `forever`; expected `shutdown \"5s\"`",
            "expected `shutdown \"5s\"` (asked to stop, then cancelled after 5 s)",
            "`shutdown` is given twice; keep one `shutdown …`",
            "`5 parsecs` is not a duration",
            "`0s` is zero, which leaves the child no time to stop; to cancel it at once, write `shutdown brutal`",
            "did you mean `brutal`?",
            "unexpected token after the value of `shutdown`",
            "is too large: a duration holds at most about 584 billion years; to wait for the child as long as it takes, write `shutdown infinity`",
            "unknown child option `shutdwn`; did you mean `shutdown`?",
            "expected `shutdown \"5s\"`",
        ];
        assert_eq!(found.len(), expected.len(), "{found:?}");
        for (message, expected) in found.iter().zip(expected) {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn numbers_out_of_range_are_errors() {
        let found = messages(quote!(child "a" (factor 1e400, jitter -0.5) => a()));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("at least 1"), "{found:?}");
        assert!(found[1].contains("from 0.0 to 1.0"), "{found:?}");
        let found = messages(quote!(intensity: 4294967296 within "1s", seed: -1, body |_| {}));
        assert!(
            found[0].contains("up to") || found[0].contains("from 1 to"),
            "{found:?}"
        );
        assert!(
            found[1].contains("`seed` takes a whole number"),
            "{found:?}"
        );
        // And the expansion of what is left still happens.
        let output = super::super::expand(quote!(child "a" (factor 1e400) => a()));
        assert!(output.to_string().contains("compile_error"), "{output}");
    }

    #[test]
    fn a_child_takes_cfg_and_nothing_else_takes_an_attribute() {
        let found = messages(quote! {
            #[cfg(feature = "a")]
            child "one" => a(),
            #[cfg(not(feature = "a"))]
            child "one" => b(),
            #[cfg(all())] #[cfg(unix)]
            child "two" => c(),
            #[allow(unused)]
            child "three" => d(),
            #[cfg(feature = "b")]
            name: "svc",
            #[inline]
            body |_| {},
            /// Doc comments are comments, anywhere.
            child "four" => e(),
            /// Even on a setting.
            seed: 4,
        });
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].contains("`#[allow(…)]` cannot go on a child: a child takes `#[cfg(…)]`"),
            "{found:?}"
        );
        assert!(
            found[1].contains("`#[cfg(…)]` cannot go on `name: …`"),
            "{found:?}"
        );
        assert!(
            found[2].contains("`#[inline]` cannot go on the body"),
            "{found:?}"
        );
    }

    #[test]
    fn children_of_one_name_clash_unless_their_cfgs_differ() {
        let found = messages(quote! {
            child "one" => a(),
            #[cfg(feature = "a")]
            child "one" => b(),
            #[cfg(feature = "b")]
            child "two" => c(),
            #[cfg(feature = "b")]
            child "two" => d(),
        });
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("the 1st child and this one, the 2nd"));
        assert!(found[1].contains("the 3rd child and this one, the 4th"));
    }

    #[test]
    fn an_entry_after_attributes_is_still_an_entry() {
        // A missing comma before it, and a broken entry before it.
        let found = messages(quote! {
            child "a" => a() #[cfg(unix)] child "b" => b(),
            chlid "c" => c(), #[cfg(unix)] child "d" => d(),
        });
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("expected `,` before this entry"));
        assert!(found[1].contains("did you mean `child`"));
    }

    #[test]
    fn a_cfg_child_is_added_by_a_statement_under_its_cfg() {
        let output = super::super::expand(quote! {
            child "a" => a(),
            #[cfg(feature = "b")]
            child "b" => b(),
        })
        .to_string();
        assert!(!output.contains("compile_error"), "{output}");
        assert!(output.contains("let mut __tethered_builder"), "{output}");
        let a = output.find("ChildSpec > :: new (\"a\"").unwrap();
        let b = output
            .find("# [cfg (feature = \"b\")] { __tethered_builder = __tethered_builder . child")
            .unwrap();
        assert!(a < b, "declaration order: {output}");
    }

    #[test]
    fn names_the_crate_by_the_path_it_is_given() {
        let output = super::super::expand(quote! {
            crate = tt;
            child "a" => a(),
        })
        .to_string();
        assert!(!output.contains("compile_error"), "{output}");
        assert!(
            output.starts_with("tt :: Supervisor :: builder ()"),
            "{output}"
        );
        assert!(output.contains("< tt :: ChildSpec > :: new"), "{output}");
        assert!(!output.contains(":: tethered"), "{output}");
        let plain = super::super::expand(quote!(child "a" => a())).to_string();
        assert!(plain.starts_with(":: tethered :: Supervisor"), "{plain}");
    }

    #[test]
    fn suggests_by_case_and_typo() {
        assert_eq!(suggest("OneForAll", STRATEGIES), Some("one_for_all"));
        assert_eq!(suggest("rest_for_on", STRATEGIES), Some("rest_for_one"));
        assert_eq!(suggest("everyone", STRATEGIES), None);
        assert_eq!(suggest("chlid", &["name", "child", "body"]), Some("child"));
        assert_eq!(suggest("bdoy", &["name", "child", "body"]), Some("body"));
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(23), "23rd");
    }
}
