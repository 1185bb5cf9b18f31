//! Syntax to a checked model: options interpreted, the body rewritten, every
//! mistake recorded.

use std::time::Duration;

use syn::{Ident, ItemFn, LitStr, ReturnType, Type};

use crate::common::options::{self, RawOption};
use crate::common::{Errors, Support, body, check_async_fn};

const KEYS: &[&str] = &[
    "name",
    "on_exit",
    "timeout",
    "cleanup_timeout",
    "send",
    "crate",
];

/// Whether the fn's scope holds local children (`spawn_local!`), and
/// whether they must be `Send`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locals {
    /// No `spawn_local!`: a plain scope.
    None,
    /// `Send` local children; the fn's future stays `Send`.
    Send,
    /// `send = false`: local children that may be `!Send`; the fn's future
    /// is `!Send`.
    NonSend,
}

/// The fn's return type. How a failed scope reaches the caller is decided
/// from it by the type checker (see `tethered::__private::Scoped`), so that
/// aliases of `Result` are recognised too.
pub(crate) enum Output {
    /// No return type, or `()`.
    Unit,
    /// `impl Trait`, which cannot be named in the body: a value.
    Opaque,
    /// Any other type.
    Type(Box<Type>),
}

pub(crate) struct ScopedFn {
    pub(crate) item: ItemFn,
    pub(crate) output: Output,
    pub(crate) name: LitStr,
    pub(crate) on_exit: Option<Ident>,
    pub(crate) timeout: Option<(Duration, LitStr)>,
    pub(crate) cleanup_timeout: Option<(Duration, LitStr)>,
    pub(crate) locals: Locals,
    /// `crate = …`: the path of the runtime crate.
    pub(crate) support: Support,
}

impl ScopedFn {
    /// The model, or `None` when the fn itself cannot take the attribute.
    pub(crate) fn new(options: &[RawOption], mut item: ItemFn, errors: &Errors) -> Option<Self> {
        let mut fatal = !check_async_fn(&item, "scoped", "a scope is awaited", errors);
        if let ReturnType::Type(_, ty) = &item.sig.output
            && let Some(handle) = mentions_task_handle(ty)
        {
            fatal = true;
            errors.error_spanned_by(
                &handle.ident,
                "a `TaskHandle` cannot leave the scope that spawned it; join it inside \
                 the fn and return its value (or its `Outcome`), or spawn into a \
                 longer-lived scope passed in as `&Scope`",
            );
        }
        let mut model = ScopedFn {
            output: output_of(&item.sig.output),
            name: LitStr::new(&item.sig.ident.to_string(), item.sig.ident.span()),
            on_exit: None,
            timeout: None,
            cleanup_timeout: None,
            locals: Locals::None,
            support: Support::Tethered,
            item: item.clone(),
        };
        let mut send = None;
        for option in options::check_keys(options, KEYS, errors) {
            match option.key.to_string().as_str() {
                "name" => {
                    if let Some(name) = errors.take(options::string(option, "\"fetch\"")) {
                        model.name = name;
                    }
                }
                "on_exit" => {
                    model.on_exit = errors.take(options::word(option, &["join", "cancel"]))
                }
                "timeout" => model.timeout = errors.take(options::duration(option)),
                "cleanup_timeout" => {
                    model.cleanup_timeout = errors.take(options::duration(option));
                }
                "send" => send = errors.take(options::boolean(option)),
                "crate" => {
                    if let Some(support) = errors.take(Support::from_option(option)) {
                        model.support = support;
                    }
                }
                _ => {}
            }
        }
        if fatal {
            return None;
        }
        let local = body::prepare(&mut item.block, &model.support, errors, true);
        model.locals = match (send, local) {
            // `send = false` makes the fn's future `!Send` even without a
            // local child yet: what the user asked, and what adding one
            // later keeps.
            (Some(false), _) => Locals::NonSend,
            (_, Some(_)) => Locals::Send,
            (_, None) => Locals::None,
        };
        model.item = item;
        Some(model)
    }
}

/// A `TaskHandle` in a return type that can only come from the fn's own
/// scope: its lifetime elided, `'_` or `'static`. (A handle with a named
/// lifetime, `TaskHandle<'o, T>`, may come from an outer scope passed in.)
fn mentions_task_handle(ty: &Type) -> Option<&syn::PathSegment> {
    fn find(ty: &Type) -> Option<&syn::PathSegment> {
        let Type::Path(path) = ty else {
            return match ty {
                Type::Reference(reference) => find(&reference.elem),
                Type::Paren(paren) => find(&paren.elem),
                Type::Tuple(tuple) => tuple.elems.iter().find_map(find),
                Type::Array(array) => find(&array.elem),
                Type::Slice(slice) => find(&slice.elem),
                _ => None,
            };
        };
        path.path.segments.iter().find_map(|segment| {
            let arguments = match &segment.arguments {
                syn::PathArguments::AngleBracketed(arguments) => Some(arguments),
                _ => None,
            };
            if segment.ident == "TaskHandle" {
                let lifetime = arguments.and_then(|arguments| {
                    arguments.args.iter().find_map(|argument| match argument {
                        syn::GenericArgument::Lifetime(lifetime) => Some(lifetime),
                        _ => None,
                    })
                });
                let own_scope = lifetime
                    .is_none_or(|lifetime| lifetime.ident == "_" || lifetime.ident == "static");
                return own_scope.then_some(segment);
            }
            arguments?.args.iter().find_map(|argument| match argument {
                syn::GenericArgument::Type(inner) => find(inner),
                _ => None,
            })
        })
    }
    find(ty)
}

fn output_of(output: &ReturnType) -> Output {
    match output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
            Type::ImplTrait(_) => Output::Opaque,
            other => Output::Type(Box::new(other.clone())),
        },
    }
}
