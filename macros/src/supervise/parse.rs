//! Tokens to syntax: the entries of `supervise! { … }`, split and
//! recognised, their values still tokens (the model reads them with
//! [`Reader`]).
//!
//! Each entry is parsed on a fork of the input: an entry that does not
//! parse is reported and skipped up to the next entry, so one compile shows
//! the mistakes of every entry.

use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use syn::buffer::Cursor;
use syn::ext::IdentExt;
use syn::parse::discouraged::Speculative;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Expr, Ident, Lit, LitStr, Token};

use crate::common::Support;
use crate::common::options::closest;

/// The settings, `key: value`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Name,
    Strategy,
    Intensity,
    Shutdown,
    Seed,
}

impl Key {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "name" => Key::Name,
            "strategy" => Key::Strategy,
            "intensity" => Key::Intensity,
            "shutdown" => Key::Shutdown,
            "seed" => Key::Seed,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Strategy => "strategy",
            Key::Intensity => "intensity",
            Key::Shutdown => "shutdown",
            Key::Seed => "seed",
        }
    }

    /// The setting written out, for messages.
    pub(crate) fn example(self) -> &'static str {
        match self {
            Key::Name => "name: \"svc\"",
            Key::Strategy => "strategy: one_for_one",
            Key::Intensity => "intensity: 5 within \"10s\"",
            Key::Shutdown => "shutdown: grace \"5s\" then cancel \"10s\"",
            Key::Seed => "seed: 42",
        }
    }
}

/// Every word an entry starts with.
const ENTRY_WORDS: &[&str] = &[
    "name",
    "strategy",
    "intensity",
    "shutdown",
    "seed",
    "child",
    "body",
];

/// The words of a child's options, to recognise options written without
/// their parentheses.
const CHILD_OPTION_WORDS: &[&str] = &[
    "permanent",
    "transient",
    "temporary",
    "backoff",
    "factor",
    "jitter",
    "shutdown",
];

const EXPECTED_ENTRY: &str = "expected an entry of the supervisor: `name: …`, `strategy: …`, `intensity: …`, `shutdown: …`, `seed: …`, `child \"name\" => …` or `body |sv| { … }`";

pub(crate) struct Input {
    /// The path of the runtime crate: `$crate` through
    /// `tethered::supervise!`, `::tethered` without a `crate = …;`.
    pub(crate) support: Support,
    pub(crate) entries: Vec<Entry>,
}

pub(crate) enum Entry {
    Setting(Setting),
    Child(Child),
    Body(Body),
    /// A mistake where an entry should be: an entry that did not parse
    /// (`supervises` unless it was a setting), a missing comma.
    Broken {
        error: syn::Error,
        supervises: bool,
    },
}

/// `key: value`.
pub(crate) struct Setting {
    /// The attributes written before it, which a setting cannot take.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) key: Key,
    pub(crate) ident: Ident,
    pub(crate) value: Vec<TokenTree>,
}

/// `#[cfg(…)] child "name" (options) => expression`.
pub(crate) struct Child {
    /// The attributes written before it: `#[cfg(…)]`, or mistakes.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) keyword: Ident,
    pub(crate) name: LitStr,
    /// The options between the parentheses, split at their commas; none is
    /// empty.
    pub(crate) options: Vec<Vec<TokenTree>>,
    pub(crate) expr: Expr,
}

/// `body |sv| { … }`.
pub(crate) struct Body {
    /// The attributes written before it, which the body cannot take.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) keyword: Ident,
    pub(crate) expr: Expr,
}

/// Parses every entry; the mistakes are kept in their place, as broken
/// entries. A plain function over tokens, so it can be tested (and fuzzed)
/// without a compiler.
pub(crate) fn parse(tokens: TokenStream) -> Input {
    let (support, tokens) = split_support(tokens);
    let parser = |input: ParseStream<'_>| {
        let mut entries = Vec::new();
        while !input.is_empty() {
            let fork = input.fork();
            match entry(&fork) {
                Ok(entry) => {
                    input.advance_to(&fork);
                    entries.push(entry);
                }
                Err(error) => {
                    // Anything but a setting may have been meant as a child
                    // (`chlid "worker" => …`).
                    let supervises = input
                        .cursor()
                        .ident()
                        .is_none_or(|(word, _)| Key::from_name(&word.to_string()).is_none());
                    entries.push(Entry::Broken { error, supervises });
                    skip_to_next_entry(input)?;
                    continue;
                }
            }
            if input.is_empty() {
                break;
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
                continue;
            }
            let error = if starts_entry(input.cursor()) {
                input.error("expected `,` before this entry")
            } else {
                let error = input
                    .error("expected `,` and the next entry, or the end of `supervise! { … }`");
                skip_to_next_entry(input)?;
                error
            };
            entries.push(Entry::Broken {
                error,
                supervises: false,
            });
        }
        Ok(entries)
    };
    match parser.parse2(tokens) {
        Ok(entries) => Input { support, entries },
        // Every token is consumed above; kept for safety all the same.
        Err(error) => Input {
            support,
            entries: vec![Entry::Broken {
                error,
                supervises: true,
            }],
        },
    }
}

/// `crate = path;` before the entries, which `tethered::supervise!` passes
/// as `crate = $crate;`, so that the expansion names the runtime crate
/// under whatever name the user depends on it: the path, and the entries.
fn split_support(tokens: TokenStream) -> (Support, TokenStream) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let prefixed = matches!(trees.first(), Some(TokenTree::Ident(word)) if word == "crate")
        && matches!(trees.get(1), Some(TokenTree::Punct(eq)) if eq.as_char() == '=');
    let semi = trees
        .iter()
        .position(|tree| matches!(tree, TokenTree::Punct(semi) if semi.as_char() == ';'));
    match semi {
        Some(semi) if prefixed && semi > 2 => {
            let path = trees[2..semi].iter().cloned().collect();
            let rest = trees[semi + 1..].iter().cloned().collect();
            (Support::Given(path), rest)
        }
        _ => (Support::Tethered, trees.into_iter().collect()),
    }
}

fn entry(input: ParseStream<'_>) -> syn::Result<Entry> {
    let attrs = input.call(Attribute::parse_outer)?;
    if !input.peek(Ident::peek_any) {
        return Err(input.error(EXPECTED_ENTRY));
    }
    let word = input.call(Ident::parse_any)?;
    let colon = input.peek(Token![:]) && !input.peek(Token![::]);
    let name = word.to_string();
    match (name.as_str(), colon) {
        ("child", false) => child(attrs, word, input).map(Entry::Child),
        ("body", false) => body(attrs, word, input).map(Entry::Body),
        ("child", true) => Err(syn::Error::new(
            input.span(),
            "a child takes no colon: write `child \"name\" => worker(…)`",
        )),
        ("body", true) => Err(syn::Error::new(
            input.span(),
            "the body takes no colon: write `body |sv| { … }`",
        )),
        (_, true) => match Key::from_name(&name) {
            Some(key) => {
                input.parse::<Token![:]>()?;
                Ok(Entry::Setting(Setting {
                    attrs,
                    key,
                    ident: word,
                    value: value(input)?,
                }))
            }
            None => Err(unknown_entry(&word)),
        },
        (_, false) => match Key::from_name(&name) {
            Some(key) => Err(syn::Error::new(
                word.span(),
                format!(
                    "expected `{name}: …` with a colon, like `{}`",
                    key.example()
                ),
            )),
            None => Err(unknown_entry(&word)),
        },
    }
}

fn unknown_entry(word: &Ident) -> syn::Error {
    let name = word.to_string();
    let accepted = ENTRY_WORDS
        .iter()
        .map(|word| format!("`{word}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = match suggest(&name, ENTRY_WORDS) {
        Some(suggestion) => {
            format!("unknown option `{name}`; did you mean `{suggestion}`? (accepted: {accepted})")
        }
        None => format!("unknown option `{name}`; accepted: {accepted}"),
    };
    syn::Error::new(word.span(), message)
}

/// A word close to `word` among `known`: the same but for case and
/// underscores (`OneForAll`), two letters swapped (`chlid`), or within a
/// typo of it.
pub(crate) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let squash = |text: &str| text.replace('_', "").to_lowercase();
    known
        .iter()
        .find(|candidate| squash(candidate) == squash(word) || swapped(word, candidate))
        .copied()
        .or_else(|| closest(word, known))
}

/// Whether `a` is `b` with two neighbouring letters swapped.
fn swapped(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() != b.len() {
        return false;
    }
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    matches!(differ[..], [i, j] if j == i + 1 && a[i] == b[j] && a[j] == b[i])
}

/// A setting's value: the tokens up to the next comma or entry.
fn value(input: ParseStream<'_>) -> syn::Result<Vec<TokenTree>> {
    let mut trees = Vec::new();
    while !input.is_empty() && !input.peek(Token![,]) && !starts_entry(input.cursor()) {
        trees.push(input.parse::<TokenTree>()?);
    }
    Ok(trees)
}

fn child(attrs: Vec<Attribute>, keyword: Ident, input: ParseStream<'_>) -> syn::Result<Child> {
    let name: LitStr = if input.peek(LitStr) {
        input.parse()?
    } else if let Some((ident, _)) = input.cursor().ident() {
        return Err(syn::Error::new(
            ident.span(),
            format!("a child's name is a string: write `child \"{ident}\" => …`"),
        ));
    } else {
        return Err(error_at(
            input,
            keyword.span(),
            "expected the child's name, a string, like `child \"worker\" => worker()`",
        ));
    };
    let mut last = name.span();
    let mut options = Vec::new();
    if input.peek(syn::token::Paren) {
        let content;
        let parens = syn::parenthesized!(content in input);
        last = parens.span.join();
        let mut option = Vec::new();
        while !content.is_empty() {
            let tree: TokenTree = content.parse()?;
            match &tree {
                TokenTree::Punct(comma) if comma.as_char() == ',' => {
                    if !option.is_empty() {
                        options.push(std::mem::take(&mut option));
                    }
                }
                _ => option.push(tree),
            }
        }
        if !option.is_empty() {
            options.push(option);
        }
    }
    if !input.peek(Token![=>]) {
        let shown = name.value().escape_default().to_string();
        let misplaced_option = input
            .cursor()
            .ident()
            .is_some_and(|(word, _)| CHILD_OPTION_WORDS.contains(&word.to_string().as_str()));
        let message = if misplaced_option {
            format!(
                "a child's options go in parentheses after its name: `child \"{shown}\" (transient, backoff \"1s\"..\"30s\") => …`"
            )
        } else {
            let options = if options.is_empty() { "" } else { " (…)" };
            format!(
                "expected `=>` and the expression that makes the child's future: `child \"{shown}\"{options} => worker(db.clone())`"
            )
        };
        return Err(error_at(input, last, message));
    }
    let arrow: Token![=>] = input.parse()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new_spanned(
            arrow,
            "expected the expression that makes the child's future after `=>`, like `=> worker(db.clone())`",
        ));
    }
    let expr: Expr = input.parse()?;
    Ok(Child {
        attrs,
        keyword,
        name,
        options,
        expr,
    })
}

fn body(attrs: Vec<Attribute>, keyword: Ident, input: ParseStream<'_>) -> syn::Result<Body> {
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(
            keyword.span(),
            "expected the body after `body`: `body |sv| { … }`",
        ));
    }
    let expr: Expr = input.parse()?;
    Ok(Body {
        attrs,
        keyword,
        expr,
    })
}

/// An error at the next token, or at `fallback` at the end of the input.
fn error_at(input: ParseStream<'_>, fallback: Span, message: impl std::fmt::Display) -> syn::Error {
    if input.is_empty() {
        syn::Error::new(fallback, message)
    } else {
        input.error(message)
    }
}

/// Whether an entry starts at `cursor`: `key:`, `child "…"`, `child (` or
/// `body |…`, after any attributes (`#[cfg(…)]`).
fn starts_entry(mut cursor: Cursor<'_>) -> bool {
    while let Some((pound, rest)) = cursor.punct()
        && pound.as_char() == '#'
    {
        match rest.group(proc_macro2::Delimiter::Bracket) {
            Some((_, _, next)) => cursor = next,
            None => return false,
        }
    }
    let Some((word, rest)) = cursor.ident() else {
        return false;
    };
    let word = word.to_string();
    if !ENTRY_WORDS.contains(&word.as_str()) {
        return false;
    }
    let single_colon = rest
        .punct()
        .is_some_and(|(colon, _)| colon.as_char() == ':' && colon.spacing() == Spacing::Alone);
    match word.as_str() {
        "child" => single_colon || rest.literal().is_some(),
        "body" => {
            single_colon
                || rest.punct().is_some_and(|(bar, _)| bar.as_char() == '|')
                || rest
                    .ident()
                    .is_some_and(|(word, _)| word == "move" || word == "async")
        }
        _ => single_colon,
    }
}

/// Skips the tokens of a broken entry, up to and past the comma before the
/// next entry (or to the end).
fn skip_to_next_entry(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            let comma = matches!(&tree, TokenTree::Punct(punct) if punct.as_char() == ',');
            if comma && (starts_entry(next) || next.eof()) {
                return Ok(((), next));
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// Reads the tokens of a setting's value or of a child's option, one piece
/// at a time; a mismatch is an error at the offending token (or over the
/// whole value when it stops short).
pub(crate) struct Reader<'a> {
    trees: &'a [TokenTree],
    position: usize,
    /// What the error spans when the value is empty.
    empty: Span,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(trees: &'a [TokenTree], empty: Span) -> Self {
        Reader {
            trees,
            position: 0,
            empty,
        }
    }

    fn peek(&self) -> Option<&'a TokenTree> {
        self.trees.get(self.position)
    }

    fn advance<T>(&mut self, value: T) -> Option<T> {
        self.position += 1;
        Some(value)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.position >= self.trees.len()
    }

    /// The word `word`, if it comes next.
    pub(crate) fn word(&mut self, word: &str) -> Option<Ident> {
        match self.peek() {
            Some(TokenTree::Ident(ident)) if ident == word => self.advance(ident.clone()),
            _ => None,
        }
    }

    /// Any word, if one comes next.
    pub(crate) fn any_word(&mut self) -> Option<Ident> {
        match self.peek() {
            Some(TokenTree::Ident(ident)) => self.advance(ident.clone()),
            _ => None,
        }
    }

    /// The punctuation `ch`, if it comes next; `joint` when it must be glued
    /// to the one after (the first `.` of `..`).
    pub(crate) fn punct(&mut self, ch: char, joint: bool) -> bool {
        match self.peek() {
            Some(TokenTree::Punct(punct))
                if punct.as_char() == ch && (!joint || punct.spacing() == Spacing::Joint) =>
            {
                self.position += 1;
                true
            }
            _ => false,
        }
    }

    /// A literal, if one comes next.
    pub(crate) fn literal(&mut self) -> Option<Lit> {
        match self.peek() {
            Some(TokenTree::Literal(literal)) => self.advance(Lit::new(literal.clone())),
            _ => None,
        }
    }

    /// A string literal, if one comes next.
    pub(crate) fn string(&mut self) -> Option<LitStr> {
        match self.peek() {
            Some(TokenTree::Literal(literal)) => match Lit::new(literal.clone()) {
                Lit::Str(text) => self.advance(text),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether a parenthesised group comes next.
    pub(crate) fn peek_parenthesised(&self) -> bool {
        matches!(self.peek(), Some(TokenTree::Group(group))
            if group.delimiter() == proc_macro2::Delimiter::Parenthesis)
    }

    /// A parenthesised group, if one comes next: an expression computed at
    /// run time.
    pub(crate) fn parenthesised(&mut self) -> Option<proc_macro2::Group> {
        match self.peek() {
            Some(TokenTree::Group(group))
                if group.delimiter() == proc_macro2::Delimiter::Parenthesis =>
            {
                self.advance(group.clone())
            }
            _ => None,
        }
    }

    /// An error at the next token, or over the whole value if none is left.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        match self.peek() {
            Some(tree) => syn::Error::new(tree.span(), message),
            None => self.whole_error(message),
        }
    }

    /// An error over the whole value.
    pub(crate) fn whole_error(&self, message: impl std::fmt::Display) -> syn::Error {
        if self.trees.is_empty() {
            syn::Error::new(self.empty, message)
        } else {
            syn::Error::new_spanned(self.trees.iter().cloned().collect::<TokenStream>(), message)
        }
    }
}
