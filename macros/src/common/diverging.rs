//! Async blocks that never return: `spawn!` cannot dispatch on their
//! output (see [`never_returns`]), so it recognises them by their syntax.

use proc_macro2::{TokenStream, TokenTree};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Item, Macro, Stmt};

/// Whether `fut` is an `async` block (`move` or not) whose value can only
/// diverge: it ends in a `loop` that no `break` leaves, a `panic!`,
/// `unreachable!`, `todo!` or `unimplemented!`, `std::process::exit(…)`, or
/// `pending().await` (`std::future::pending`, without a turbofish), and
/// nothing in it returns early (`return`, `?`; nested closures, async blocks
/// and items aside). Its output is then an inference variable that becomes
/// `!` only at the end of type checking.
///
/// A syntactic check, which errs on the side of "no": a `break`, `return`
/// or `?` in the tokens of a macro inside counts. A block it misses keeps
/// the usual dispatch (and its "type annotations needed"); one it wrongly
/// took would not compile either, since the spawn then requires its output
/// to be `!`.
pub(crate) fn never_returns(fut: &Expr) -> bool {
    let Expr::Async(block) = fut else {
        return false;
    };
    let ends_diverging = match block.block.stmts.last() {
        Some(Stmt::Expr(expr, _)) => diverges(expr),
        Some(Stmt::Macro(statement)) => is_diverging_macro(&statement.mac),
        _ => false,
    };
    let mut exits = EarlyExits::default();
    exits.visit_block_mut(&mut block.block.clone());
    ends_diverging && !exits.found
}

/// Whether evaluating `expr` can only diverge, in the forms `never_returns`
/// recognises.
fn diverges(expr: &Expr) -> bool {
    match expr {
        Expr::Loop(looped) => {
            let mut breaks = Breaks {
                label: looped
                    .label
                    .as_ref()
                    .map(|label| label.name.ident.to_string()),
                depth: 0,
                found: false,
            };
            breaks.visit_block_mut(&mut looped.body.clone());
            !breaks.found
        }
        Expr::Macro(mac) => is_diverging_macro(&mac.mac),
        Expr::Call(call) => call_path(&call.func).is_some_and(|path| {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            matches!(path[..], ["std", "process", "exit"] | ["process", "exit"])
        }),
        Expr::Await(awaited) => match &*awaited.base {
            Expr::Call(call) if call.args.is_empty() => call_path(&call.func).is_some_and(|path| {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                matches!(
                    path[..],
                    ["pending"] | ["future", "pending"] | ["std" | "core", "future", "pending"]
                )
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The segments of a called path without generic arguments (`pending()`,
/// not `pending::<u8>()`, whose output is known).
fn call_path(func: &Expr) -> Option<Vec<String>> {
    let Expr::Path(path) = func else {
        return None;
    };
    if path.qself.is_some() || path.path.segments.iter().any(|s| !s.arguments.is_none()) {
        return None;
    }
    Some(
        path.path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect(),
    )
}

fn is_diverging_macro(mac: &Macro) -> bool {
    let segments: Vec<String> = mac
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let name = match segments.as_slice() {
        [name] => name,
        [krate, name] if krate == "std" || krate == "core" => name,
        _ => return false,
    };
    matches!(
        name.as_str(),
        "panic" | "unreachable" | "todo" | "unimplemented"
    )
}

/// Finds a `break` out of a loop: an unlabeled one outside the loops nested
/// in it, or one with its label.
struct Breaks {
    label: Option<String>,
    /// How many loops nested in it the walk is in.
    depth: usize,
    found: bool,
}

impl Breaks {
    fn nested(&mut self, visit: impl FnOnce(&mut Self)) {
        self.depth += 1;
        visit(self);
        self.depth -= 1;
    }
}

// Closures, async blocks and items have loops of their own, which a `break`
// in them cannot leave.
impl VisitMut for Breaks {
    fn visit_item_mut(&mut self, _item: &mut Item) {}
    fn visit_expr_closure_mut(&mut self, _closure: &mut syn::ExprClosure) {}
    fn visit_expr_async_mut(&mut self, _block: &mut syn::ExprAsync) {}

    fn visit_expr_break_mut(&mut self, exit: &mut syn::ExprBreak) {
        self.found |= match &exit.label {
            None => self.depth == 0,
            Some(label) => self.label.as_deref() == Some(&*label.ident.to_string()),
        };
        visit_mut::visit_expr_break_mut(self, exit);
    }

    fn visit_expr_loop_mut(&mut self, looped: &mut syn::ExprLoop) {
        self.nested(|this| visit_mut::visit_expr_loop_mut(this, looped));
    }

    fn visit_expr_while_mut(&mut self, looped: &mut syn::ExprWhile) {
        self.nested(|this| visit_mut::visit_expr_while_mut(this, looped));
    }

    fn visit_expr_for_loop_mut(&mut self, looped: &mut syn::ExprForLoop) {
        self.nested(|this| visit_mut::visit_expr_for_loop_mut(this, looped));
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        self.found |= has_word(&mac.tokens, "break");
    }
}

/// Finds a `return` or a `?` that would end an async block early.
#[derive(Default)]
struct EarlyExits {
    found: bool,
}

impl VisitMut for EarlyExits {
    fn visit_item_mut(&mut self, _item: &mut Item) {}
    fn visit_expr_closure_mut(&mut self, _closure: &mut syn::ExprClosure) {}
    fn visit_expr_async_mut(&mut self, _block: &mut syn::ExprAsync) {}

    fn visit_expr_return_mut(&mut self, _exit: &mut syn::ExprReturn) {
        self.found = true;
    }

    fn visit_expr_try_mut(&mut self, _exit: &mut syn::ExprTry) {
        self.found = true;
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        self.found |= has_word(&mac.tokens, "return") || has_punct(&mac.tokens, '?');
    }
}

fn has_word(tokens: &TokenStream, word: &str) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == word,
        TokenTree::Group(group) => has_word(&group.stream(), word),
        _ => false,
    })
}

fn has_punct(tokens: &TokenStream, ch: char) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        TokenTree::Punct(punct) => punct.as_char() == ch,
        TokenTree::Group(group) => has_punct(&group.stream(), ch),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn never(fut: TokenStream) -> bool {
        never_returns(&syn::parse2(fut).unwrap())
    }

    #[test]
    fn sees_async_blocks_that_never_return() {
        let diverging = [
            quote!(async move {
                loop {
                    beat().await;
                    sleep(period).await;
                }
            }),
            quote!(async { loop {} }),
            quote!(async {
                let mut n = 0;
                loop {
                    n += 1;
                }
            }),
            quote!(async { panic!("no") }),
            quote!(async {
                unreachable!();
            }),
            quote!(async { std::todo!() }),
            quote!(async { unimplemented!() }),
            quote!(async { std::process::exit(1) }),
            quote!(async { pending().await }),
            quote!(async { std::future::pending().await }),
            quote!(async { future::pending().await }),
            // Breaks that leave only the loops, closures and blocks inside.
            quote!(async {
                loop {
                    for x in xs {
                        if x {
                            break;
                        }
                    }
                    while go() {
                        break;
                    }
                }
            }),
            quote!(async {
                loop {
                    loop {
                        break;
                    }
                    let f = || loop {
                        break;
                    };
                    'b: {
                        break 'b;
                    }
                }
            }),
            quote!(async {
                'outer: loop {
                    'inner: loop {
                        break 'inner;
                    }
                }
            }),
            quote!(async {
                loop {
                    spawn(async {
                        return 1;
                    });
                    let f = |x| x?;
                }
            }),
        ];
        for fut in diverging {
            assert!(never(fut.clone()), "{fut}");
        }
    }

    #[test]
    fn does_not_take_blocks_that_may_return() {
        let returning = [
            quote!(async {
                loop {
                    break;
                }
            }),
            quote!(async {
                loop {
                    if done() {
                        break 5;
                    }
                }
            }),
            quote!(async {
                loop {
                    if failed() {
                        return Err(Failed);
                    }
                }
            }),
            quote!(async {
                'outer: loop {
                    loop {
                        break 'outer;
                    }
                }
            }),
            quote!(async {
                loop {
                    step()?;
                }
            }),
            quote!(async {
                loop {
                    tokio::select! { _ = stop() => break, _ = tick() => {} }
                }
            }),
            quote!(async {
                loop {
                    log!(return)
                }
            }),
            quote!(async {
                let Some(x) = y else {
                    return;
                };
                loop {}
            }),
            quote!(async {
                loop {}
                1
            }),
            quote!(async { pending::<u8>().await }),
            quote!(async { other::pending().await }),
            quote!(async { abort() }),
            quote!(work()),
            quote!(|| async { loop {} }),
        ];
        for fut in returning {
            assert!(!never(fut.clone()), "{fut}");
        }
    }
}
