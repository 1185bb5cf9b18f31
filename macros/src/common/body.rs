//! The body of a scoped fn: `spawn!`, `shield!`, `spawn_blocking!`, `defer!`
//! and `scope!` rewritten into calls on the scope; spawns that would escape
//! the scope and handles bound but never used rejected.
//!
//! The walk enters nested blocks, closures, async blocks and the tokens of
//! other macros (`tokio::select!`, `vec!`…), but not nested items: a nested
//! `fn` is not part of the scope.

use std::cell::Cell;

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Expr, ExprMacro, Item, Local, Macro, Meta, Pat, Stmt, Token};

use super::awaits::{self, AwaitRecorder};
use super::{Errors, Support, diverging};

/// The name of the scope inside an expanded body. Prefixed so that user code
/// cannot collide with it.
pub(crate) fn scope_ident() -> Ident {
    Ident::new("__tethered_scope", Span::call_site())
}

/// Checks and rewrites `block` in place, recording every mistake. The
/// rewritten calls name the runtime crate by `support`. With `locals`, the
/// body's scope can hold local children: returns where the body first
/// starts one (`spawn_local!`), if it does. Without, `spawn_local!` is a
/// mistake.
pub(crate) fn prepare(
    block: &mut Block,
    support: &Support,
    errors: &Errors,
    locals: bool,
) -> Option<Span> {
    let names = MacroNames::new(support);
    // Before the rewrite, while `let h = spawn!(…)` is still a macro call.
    UnjoinedHandles {
        errors,
        names: &names,
    }
    .visit_block_mut(block);
    let mut rewriter = Rewriter {
        errors,
        support,
        names: &names,
        scope: scope_ident(),
        inside: Cell::new(None),
        locals,
        first_local: Cell::new(None),
    };
    rewriter.visit_block_mut(block);
    // Then every `.await` left in the body records where it waits (those
    // in the macro calls just expanded were recorded as they were).
    AwaitRecorder { support }.visit_block_mut(block);
    rewriter.first_local.get()
}

/// How the scoped macros may be named: `spawn!`, `tethered::spawn!`, and,
/// for a crate renamed with `crate = tt`, `tt::spawn!` (with `crate =
/// crate::rt`, both `crate::rt::spawn!` and `rt::spawn!`).
struct MacroNames {
    /// The paths (as segment names) the macros may be reached through.
    crates: Vec<Vec<String>>,
}

impl MacroNames {
    fn new(support: &Support) -> Self {
        let mut crates = vec![vec!["tethered".to_owned()]];
        if let Some(segments) = support.segments() {
            let last = segments.last().map(|name| vec![name.clone()]);
            for path in [Some(segments), last].into_iter().flatten() {
                if !crates.contains(&path) {
                    crates.push(path);
                }
            }
        }
        MacroNames { crates }
    }

    /// The scoped macro named by these segments, if any.
    fn find<S: AsRef<str>>(&self, segments: &[S]) -> Option<ScopedMacro> {
        let (name, prefix) = segments.split_last()?;
        let prefixed = prefix.is_empty()
            || self.crates.iter().any(|krate| {
                krate.len() == prefix.len()
                    && krate.iter().zip(prefix).all(|(a, b)| a == b.as_ref())
            });
        if prefixed {
            ScopedMacro::from_name(name.as_ref())
        } else {
            None
        }
    }

    fn of_path(&self, path: &syn::Path) -> Option<ScopedMacro> {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.find(&segments)
    }
}

/// The tethered macros that only make sense inside a scope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ScopedMacro {
    Spawn,
    SpawnLocal,
    Shield,
    SpawnBlocking,
    Defer,
    Scope,
}

impl ScopedMacro {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "spawn" => ScopedMacro::Spawn,
            "spawn_local" => ScopedMacro::SpawnLocal,
            "shield" => ScopedMacro::Shield,
            "spawn_blocking" => ScopedMacro::SpawnBlocking,
            "defer" => ScopedMacro::Defer,
            "scope" => ScopedMacro::Scope,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ScopedMacro::Spawn => "spawn",
            ScopedMacro::SpawnLocal => "spawn_local",
            ScopedMacro::Shield => "shield",
            ScopedMacro::SpawnBlocking => "spawn_blocking",
            ScopedMacro::Defer => "defer",
            ScopedMacro::Scope => "scope",
        }
    }

    /// Whether it returns a task handle (which must not be dropped unused).
    fn returns_handle(self) -> bool {
        matches!(
            self,
            ScopedMacro::Spawn
                | ScopedMacro::SpawnLocal
                | ScopedMacro::Shield
                | ScopedMacro::SpawnBlocking
        )
    }

    /// Whether its argument runs as a task (or a local child) of its own,
    /// where the scope cannot be reached: a task is `'static`, and a local
    /// child outlives every borrow of its scope.
    fn runs_apart(self) -> bool {
        !matches!(self, ScopedMacro::Scope)
    }
}

/// Expands one tethered macro call into a call on `scope`, spanned on the
/// invocation so that `#[track_caller]` records the user's line.
fn expand_macro(
    which: ScopedMacro,
    span: Span,
    tokens: TokenStream,
    scope: &Ident,
    support: &Support,
) -> syn::Result<TokenStream> {
    let args = syn::parse::Parser::parse2(Punctuated::<Expr, Token![,]>::parse_terminated, tokens)
        .map_err(|error| syn::Error::new(span, format!("{}; {}", error, usage(which))))?;
    let mut args: Vec<Expr> = args.into_iter().collect();
    // Told apart by its shape first (see `diverging`), then recorded.
    let diverging = matches!(which, ScopedMacro::Spawn | ScopedMacro::Shield)
        && args.last().is_some_and(diverging::never_returns);
    for arg in &mut args {
        awaits::record(arg, support);
    }
    let support = support.at(span);
    let private = quote_spanned!(span=> #support::__private);
    Ok(match (which, args.as_slice()) {
        (ScopedMacro::Spawn | ScopedMacro::Shield, [fut] | [_, fut]) => {
            let kind = task_kind(which, span, &private);
            let name = match args.as_slice() {
                [name, _] => {
                    quote_spanned!(span=> ::core::option::Option::Some(::core::convert::Into::into(#name)))
                }
                _ => quote_spanned!(span=> ::core::option::Option::None),
            };
            if diverging {
                // Its output is not known until the very end of type
                // checking, too late to pick a `spawn_task` by it: a future
                // of `!`, spawned as it is.
                quote_spanned! {span=>
                    (#private::Spawn::new(#scope, #kind, #name, #fut)).spawn_never()
                }
            } else {
                quote_spanned! {span=> {
                    #[allow(unused_imports)]
                    use #private::{SpawnAny as _, SpawnFallible as _, SpawnFallibleDebug as _};
                    (&&#private::Spawn::new(#scope, #kind, #name, #fut)).spawn_task()
                }}
            }
        }
        (ScopedMacro::SpawnLocal, [fut] | [_, fut]) => {
            let name = match args.as_slice() {
                [name, _] => {
                    quote_spanned!(span=> ::core::option::Option::Some(::core::convert::Into::into(#name)))
                }
                _ => quote_spanned!(span=> ::core::option::Option::None),
            };
            quote_spanned! {span=> {
                #[allow(unused_imports)]
                use #private::{
                    SpawnLocalAny as _, SpawnLocalFallible as _, SpawnLocalFallibleDebug as _,
                };
                (&&#private::SpawnLocal::new(#scope, #name, #fut)).spawn_local_task()
            }}
        }
        (ScopedMacro::SpawnBlocking, [work]) => {
            quote_spanned!(span=> #scope.spawn_blocking(#work))
        }
        (ScopedMacro::SpawnBlocking, [name, work]) => {
            quote_spanned!(span=> #scope.spawn_blocking_named(#name, #work))
        }
        (ScopedMacro::Defer, [cleanup]) => quote_spanned!(span=> #scope.defer(#cleanup)),
        (ScopedMacro::Scope, []) => quote_spanned!(span=> #scope),
        _ => return Err(syn::Error::new(span, usage(which))),
    })
}

/// What a mistaken call becomes, typed like the real one so that the rest of
/// the body reports nothing more: the scope for `scope!`, a handle for the
/// spawning macros, `()` for `defer!`.
fn stand_in(which: ScopedMacro, span: Span, scope: &Ident, support: &Support) -> TokenStream {
    let support = support.at(span);
    match which {
        ScopedMacro::Scope => quote_spanned!(span=> #scope),
        ScopedMacro::Defer => quote_spanned!(span=> ()),
        _ => quote_spanned!(span=> #support::__private::unavailable()),
    }
}

fn task_kind(which: ScopedMacro, span: Span, private: &TokenStream) -> TokenStream {
    match which {
        ScopedMacro::Shield => quote_spanned!(span=> #private::Kind::Shield),
        _ => quote_spanned!(span=> #private::Kind::Task),
    }
}

fn usage(which: ScopedMacro) -> &'static str {
    match which {
        ScopedMacro::Spawn => "expected `spawn!(future)` or `spawn!(\"name\", future)`",
        ScopedMacro::SpawnLocal => {
            "expected `spawn_local!(future)` or `spawn_local!(\"name\", future)`"
        }
        ScopedMacro::Shield => "expected `shield!(future)` or `shield!(\"name\", future)`",
        ScopedMacro::SpawnBlocking => {
            "expected `spawn_blocking!(|| …)` or `spawn_blocking!(\"name\", || …)`"
        }
        ScopedMacro::Defer => "expected `defer!(async move { … })`",
        ScopedMacro::Scope => "expected `scope!()`, which takes no arguments",
    }
}

/// The fix for a call that would start a task outside the scope, if `path`
/// names one (`tokio::spawn`, `tokio::task::spawn_blocking`, `task::spawn`,
/// `JoinSet::spawn`…). A bare `spawn(…)` may be the user's own function.
fn escaping_spawn(segments: &[String]) -> Option<&'static str> {
    let (last, rest) = segments.split_last()?;
    let under_tokio = rest
        .iter()
        .any(|segment| segment == "tokio" || segment == "task" || segment == "JoinSet");
    if !under_tokio {
        return None;
    }
    match last.as_str() {
        "spawn" => Some("use `spawn!(…)` to start a child task that the scope joins"),
        "spawn_local" => Some(
            "use `spawn_local!(…)` to start a local child, polled by the scope's own task, that the scope joins",
        ),
        "spawn_blocking" => {
            Some("use `spawn_blocking!(…)` to run blocking work that the scope waits for")
        }
        _ => None,
    }
}

fn escape_message(path: &str, fix: &str) -> String {
    format!(
        "`{path}` starts a task that escapes the scope: nothing would join or cancel it; {fix}; to outlive this scope, spawn into a longer-lived scope explicitly"
    )
}

/// A tethered macro used inside the future (or closure) of another one: that
/// code runs as a task of its own, which cannot borrow the scope.
fn apart_message(inner: ScopedMacro, outer: ScopedMacro) -> String {
    let inner = inner.name();
    let outer = outer.name();
    let runs_as = if outer == "spawn_local" {
        "a local child, which outlives every borrow of the scope"
    } else {
        "a task of its own, which cannot borrow the scope"
    };
    format!(
        "`{inner}!` cannot be used inside `{outer}!(…)`: that code runs as {runs_as}; \
         pass `scope!().handle()` into it and call `handle.try_spawn(…)`, or make it a `#[scoped]` fn with a scope of its own"
    )
}

struct Rewriter<'a> {
    errors: &'a Errors,
    support: &'a Support,
    names: &'a MacroNames,
    scope: Ident,
    /// The tethered macro whose arguments are being rewritten, if any.
    inside: Cell<Option<ScopedMacro>>,
    /// Whether the scope can hold local children.
    locals: bool,
    /// Where the first `spawn_local!` is, if there is one.
    first_local: Cell<Option<Span>>,
}

impl Rewriter<'_> {
    /// The replacement of a tethered macro call, or `None` for other macros.
    fn replace(&self, mac: &Macro) -> Option<TokenStream> {
        let which = self.names.of_path(&mac.path)?;
        Some(self.expand_call(which, mac.path.span(), mac.tokens.clone()))
    }

    /// Expands one tethered macro call; on a mistake, records it and returns
    /// a stand-in that keeps the rest of the body type-checking.
    fn expand_call(&self, which: ScopedMacro, span: Span, tokens: TokenStream) -> TokenStream {
        if let Some(outer) = self.inside.get() {
            self.errors
                .push(syn::Error::new(span, apart_message(which, outer)));
            let support = self.support.at(span);
            return match which {
                // The real scope cannot be borrowed in there either.
                ScopedMacro::Scope => {
                    quote_spanned!(span=> #support::__private::unavailable_scope())
                }
                _ => stand_in(which, span, &self.scope, self.support),
            };
        }
        if which == ScopedMacro::SpawnLocal {
            if !self.locals {
                self.errors.push(syn::Error::new(
                    span,
                    "`spawn_local!` needs a scope that holds local children: start them in a \
                     `#[tethered::scoped]` fn called from here (its scope holds them), or run \
                     this one with `flavor = \"local\"` (a `LocalRuntime`)",
                ));
                return stand_in(which, span, &self.scope, self.support);
            }
            if self.first_local.get().is_none() {
                self.first_local.set(Some(span));
            }
        }
        // The arguments may hold tethered macros too (mistakes, as they run
        // apart from the scope) and escaping spawns.
        let previous = self.inside.replace(which.runs_apart().then_some(which));
        let tokens = self.rewrite_tokens(tokens);
        self.inside.set(previous);
        match expand_macro(which, span, tokens, &self.scope, self.support) {
            Ok(tokens) => tokens,
            Err(error) => {
                self.errors.push(error);
                stand_in(which, span, &self.scope, self.support)
            }
        }
    }

    /// Rewrites tethered macro calls inside the raw tokens of another macro
    /// (`tokio::select! { … }`), and reports escaping spawns found there.
    fn rewrite_tokens(&self, tokens: TokenStream) -> TokenStream {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = TokenStream::new();
        let mut i = 0;
        while i < trees.len() {
            if let Some((consumed, replacement)) = self.match_at(&trees, i) {
                out.extend(replacement);
                i += consumed;
                continue;
            }
            match &trees[i] {
                TokenTree::Group(group) => {
                    let mut rewritten =
                        Group::new(group.delimiter(), self.rewrite_tokens(group.stream()));
                    rewritten.set_span(group.span());
                    out.extend([TokenTree::Group(rewritten)]);
                }
                other => out.extend([other.clone()]),
            }
            i += 1;
        }
        out
    }

    /// At `trees[i]`: a path followed by `!` and a group (a macro call) or by
    /// a parenthesised group (a function call). Returns how many trees a
    /// tethered macro call took and its replacement; reports escaping spawns.
    fn match_at(&self, trees: &[TokenTree], i: usize) -> Option<(usize, TokenStream)> {
        let previous_is_path = i > 0 && is_path_colon(&trees[i - 1]);
        if previous_is_path {
            return None;
        }
        let (segments, end) = path_at(trees, i)?;
        match trees.get(end) {
            Some(TokenTree::Punct(bang)) if bang.as_char() == '!' => {
                let group = match trees.get(end + 1) {
                    Some(TokenTree::Group(group)) => group,
                    _ => return None,
                };
                let names: Vec<&str> = segments.iter().map(|(name, _)| name.as_str()).collect();
                let which = self.names.find(&names)?;
                let span = segments.last().map(|(_, span)| *span)?;
                let replacement = self.expand_call(which, span, group.stream());
                Some((end + 2 - i, replacement))
            }
            _ => {
                // A call (`tokio::spawn(…)`) or a path used as a value
                // (`.map(tokio::spawn)`).
                let names: Vec<String> = segments.iter().map(|(name, _)| name.clone()).collect();
                if let Some(fix) = escaping_spawn(&names) {
                    let path: TokenStream = trees[i..end].iter().cloned().collect();
                    self.errors.push(syn::Error::new_spanned(
                        path,
                        escape_message(&names.join("::"), fix),
                    ));
                }
                None
            }
        }
    }
}

fn is_path_colon(tree: &TokenTree) -> bool {
    matches!(tree, TokenTree::Punct(p) if p.as_char() == ':')
}

/// Reads `ident (:: ident)*` (with an optional leading `::`) at `trees[i]`;
/// returns the segments and the index after the path.
fn path_at(trees: &[TokenTree], mut i: usize) -> Option<(Vec<(String, Span)>, usize)> {
    let mut segments = Vec::new();
    loop {
        match trees.get(i) {
            Some(TokenTree::Ident(ident)) => {
                segments.push((ident.to_string(), ident.span()));
                i += 1;
            }
            _ => return None,
        }
        let colons = matches!(
            (trees.get(i), trees.get(i + 1)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                if a.as_char() == ':' && b.as_char() == ':'
        );
        if !colons {
            return Some((segments, i));
        }
        i += 2;
    }
}

impl VisitMut for Rewriter<'_> {
    fn visit_item_mut(&mut self, _item: &mut Item) {
        // A nested item is not part of the scope.
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Macro(ExprMacro { attrs, mac }) => {
                if let Some(replacement) = self.replace(mac) {
                    *expr = Expr::Verbatim(with_attributes(attrs, replacement));
                    return;
                }
                mac.tokens = self.rewrite_tokens(mac.tokens.clone());
                return;
            }
            // A call's function is a path too: both `tokio::spawn(…)` and
            // `.map(tokio::spawn)` land here.
            Expr::Path(path) => {
                let names: Vec<String> = path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                if let Some(fix) = escaping_spawn(&names) {
                    self.errors
                        .error_spanned_by(&path.path, escape_message(&names.join("::"), fix));
                }
            }
            _ => {}
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(statement) = stmt {
            if let Some(replacement) = self.replace(&statement.mac) {
                let semi = statement.semi_token;
                let replacement = with_attributes(&statement.attrs, replacement);
                *stmt = Stmt::Expr(Expr::Verbatim(replacement), semi);
                return;
            }
            statement.mac.tokens = self.rewrite_tokens(statement.mac.tokens.clone());
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }
}

/// The replacement of a macro call, under the attributes written on the
/// call (`#[cfg(…)]`, `#[allow(…)]`), so that they apply to it as they
/// applied to the call. In braces: an attribute then covers the whole
/// replacement, a method call included, in any position.
fn with_attributes(attrs: &[Attribute], replacement: TokenStream) -> TokenStream {
    if attrs.is_empty() {
        return replacement;
    }
    quote!(#(#attrs)* { #replacement })
}

/// Finds `let h = spawn!(…);` whose `h` the rest of its block never mentions.
struct UnjoinedHandles<'a> {
    errors: &'a Errors,
    names: &'a MacroNames,
}

// A `VisitMut` that changes nothing: syn's read-only `Visit` would be a
// second large generated module to compile in every user's build.
impl VisitMut for UnjoinedHandles<'_> {
    fn visit_item_mut(&mut self, _item: &mut Item) {}

    fn visit_block_mut(&mut self, block: &mut Block) {
        for index in 0..block.stmts.len() {
            let Stmt::Local(local) = &block.stmts[index] else {
                continue;
            };
            let Some((binding, which)) = handle_binding(local, self.names) else {
                continue;
            };
            // The user said so: rustc's own lint is silenced too.
            if allows_unused(&local.attrs) {
                continue;
            }
            let name = binding.to_string();
            let used = block.stmts[index + 1..]
                .iter()
                .any(|later| mentions(later.to_token_stream(), &name));
            if used {
                continue;
            }
            let macro_name = which.name();
            self.errors.error_spanned_by(
                binding,
                format!(
                    "handle `{name}` is never joined, cancelled or passed on; \
                     use it (`{name}.join().await`, `{name}.cancel(..)`), \
                     or write `{macro_name}!(…);` without binding it if the scope \
                     should simply wait for the task, or name it `_{name}`"
                ),
            );
            // Reported: rustc's own "unused variable" would say it twice.
            if let Stmt::Local(Local {
                pat: Pat::Ident(pattern),
                ..
            }) = &mut block.stmts[index]
            {
                pattern.ident = Ident::new(&format!("_{name}"), pattern.ident.span());
            }
        }
        visit_mut::visit_block_mut(self, block);
    }
}

/// Whether `#[allow(…)]` or `#[expect(…)]` names `unused_variables` or the
/// `unused` group.
fn allows_unused(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let lint_level = attr.path().is_ident("allow") || attr.path().is_ident("expect");
        lint_level
            && attr
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|lints| {
                    lints.iter().any(|lint| {
                        matches!(lint, Meta::Path(path)
                            if path.is_ident("unused_variables") || path.is_ident("unused"))
                    })
                })
    })
}

/// `let h = spawn!(…)` (or `shield!`, `spawn_blocking!`): the bound name.
fn handle_binding<'l>(local: &'l Local, names: &MacroNames) -> Option<(&'l Ident, ScopedMacro)> {
    let Pat::Ident(pattern) = &local.pat else {
        return None;
    };
    if pattern.ident.to_string().starts_with('_') {
        return None;
    }
    let init = local.init.as_ref()?;
    let Expr::Macro(ExprMacro { mac, .. }) = &*init.expr else {
        return None;
    };
    let which = names.of_path(&mac.path)?;
    which.returns_handle().then_some((&pattern.ident, which))
}

fn mentions(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == name,
        TokenTree::Group(group) => mentions(group.stream(), name),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn prepared(body: TokenStream) -> (String, Vec<String>) {
        let mut block: Block = syn::parse2(quote!({ #body })).unwrap();
        let errors = Errors::new();
        prepare(&mut block, &Support::Tethered, &errors, true);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (block.to_token_stream().to_string(), messages)
    }

    #[test]
    fn rewrites_every_form_including_inside_other_macros() {
        let (code, errors) = prepared(quote! {
            spawn!(a());
            let h = tethered::spawn!("named", b());
            shield!(c());
            defer!(async move {});
            tokio::select! { x = h.join() => {}, _ = spawn_blocking!(|| 1).join() => {} }
            scope!().cancel("done");
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!code.contains("spawn !"), "{code}");
        assert!(code.contains("Kind :: Shield"), "{code}");
        assert!(code.contains("__tethered_scope . defer"), "{code}");
        assert!(code.contains("__tethered_scope . spawn_blocking"), "{code}");
        assert!(code.contains("__tethered_scope . cancel"), "{code}");
    }

    #[test]
    fn rejects_escaping_spawns_but_not_own_functions_or_nested_items() {
        let (_, errors) = prepared(quote! {
            tokio::spawn(a());
            let f = async { tokio::task::spawn_blocking(|| 1) };
            vec![task::spawn(b())];
            spawn(c());
            fn nested() { tokio::spawn(d()); }
        });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("`tokio::spawn` starts a task that escapes"));
        assert!(errors[1].contains("spawn_blocking!"));
        assert!(errors[2].contains("`task::spawn`"));
    }

    #[test]
    fn rejects_scoped_macros_inside_spawned_tasks_and_paths_used_as_values() {
        let (_, errors) = prepared(quote! {
            spawn!(async move { spawn!(a()); });
            defer!(async move { scope!().cancel("x") });
            let all: Vec<_> = jobs.into_iter().map(tokio::spawn).collect();
        });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("`spawn!` cannot be used inside `spawn!(…)`"));
        assert!(errors[0].contains("scope!().handle()"));
        assert!(errors[1].contains("`scope!` cannot be used inside `defer!(…)`"));
        assert!(errors[2].contains("`tokio::spawn` starts a task that escapes"));
    }

    #[test]
    fn rejects_handles_never_used() {
        let (_, errors) = prepared(quote! {
            let unused = spawn!(a());
            let used = spawn!(b());
            let _ignored = spawn!(c());
            { let inner = shield!(d()); }
            used.join().await;
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("handle `unused` is never joined"));
        assert!(errors[1].contains("handle `inner`"));
        assert!(errors[1].contains("`shield!(…);`"));
    }

    #[test]
    fn keeps_the_attributes_of_every_rewritten_call() {
        let (code, errors) = prepared(quote! {
            #[cfg(feature = "a")] spawn!(a());
            #[cfg(feature = "b")] shield!("b", b());
            #[cfg(feature = "c")] spawn_blocking!(|| c());
            #[cfg(feature = "d")] defer!(async move {});
            #[cfg(feature = "e")] scope!();
            let tail = vec![#[cfg(feature = "f")] spawn!(f()), #[allow(unused_mut)] defer!(g())];
            #[allow(unused_mut)] spawn!(async { let mut h = 1; h })
        });
        assert!(errors.is_empty(), "{errors:?}");
        for feature in ["a", "b", "c", "d", "e", "f"] {
            let kept = format!("# [cfg (feature = \"{feature}\")] {{");
            assert!(code.contains(&kept), "{kept} in {code}");
        }
        // Inside another macro's tokens, the attribute stays where it was,
        // before the replacement.
        assert!(
            code.contains("# [allow (unused_mut)] __tethered_scope . defer (g ())"),
            "{code}"
        );
        assert!(code.contains("# [allow (unused_mut)] { {"), "{code}");
        assert!(!code.contains("spawn !"), "{code}");
    }

    #[test]
    fn an_allowed_unused_handle_is_not_reported() {
        let (_, errors) = prepared(quote! {
            #[allow(unused_variables)] let quiet = spawn!(a());
            #[allow(unused)] let also_quiet = shield!(b());
            #[expect(unused_variables, reason = "kept for its drop")] let expected = spawn!(c());
            #[allow(dead_code)] let loud = spawn!(d());
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("handle `loud`"), "{errors:?}");
    }

    #[test]
    fn a_renamed_crate_names_the_macros_and_the_expansion() {
        let support = syn::parse2::<syn::Path>(quote!(crate::rt)).unwrap();
        let support = Support::Given(support.to_token_stream());
        let mut block: Block = syn::parse2(quote!({
            crate::rt::spawn!(a());
            let unused = rt::shield!(b());
            tt::defer!(c());
        }))
        .unwrap();
        let errors = Errors::new();
        prepare(&mut block, &support, &errors, true);
        let messages: Vec<String> = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("handle `unused`"), "{messages:?}");
        let code = block.to_token_stream().to_string();
        assert!(!code.contains("rt :: spawn !"), "{code}");
        assert!(!code.contains("rt :: shield !"), "{code}");
        // Another crate's `defer!` is left alone.
        assert!(code.contains("tt :: defer !"), "{code}");
        assert!(code.contains("crate :: rt :: __private :: Spawn"), "{code}");
        assert!(!code.contains(":: tethered"), "{code}");
    }

    #[test]
    fn spawns_a_future_that_never_returns_without_dispatch() {
        let (code, errors) = prepared(quote! {
            spawn!("heartbeat", async move { loop { beat().await } });
            shield!(async { std::future::pending().await });
            spawn!(async { 1 });
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(code.matches(". spawn_never ()").count(), 2, "{code}");
        assert_eq!(code.matches(". spawn_task ()").count(), 1, "{code}");
    }

    #[test]
    fn malformed_calls_say_the_accepted_forms() {
        let (_, errors) = prepared(quote! {
            spawn!();
            scope!(x);
            defer!(a, b);
        });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("expected `spawn!(future)`"));
        assert!(errors[1].contains("takes no arguments"));
        assert!(errors[2].contains("expected `defer!(async move { … })`"));
    }
}
