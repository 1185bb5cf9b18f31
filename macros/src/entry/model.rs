//! Syntax to a checked model of `#[tethered::main]` / `#[tethered::test]`.

use std::time::Duration;

use syn::{ItemFn, LitStr};

use super::Entry;
use crate::common::options::{self, RawOption};
use crate::common::{Errors, Support, body};

const MAIN_KEYS: &[&str] = &[
    "grace",
    "cancel_timeout",
    "dump_tree",
    "flavor",
    "worker_threads",
    "crate",
];
const TEST_KEYS: &[&str] = &["flavor", "worker_threads", "start_paused", "crate"];

/// How long `main` waits after a stop before cancelling, by default.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How long `main` waits after cancelling before giving up, by default.
pub(crate) const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
    /// A `LocalRuntime`: one thread, and a root scope that holds local
    /// children, `!Send` ones included.
    Local,
}

pub(crate) struct EntryFn {
    pub(crate) entry: Entry,
    pub(crate) item: ItemFn,
    pub(crate) flavor: Flavor,
    pub(crate) worker_threads: Option<u64>,
    pub(crate) start_paused: bool,
    pub(crate) grace: (Duration, Option<LitStr>),
    pub(crate) cancel_timeout: (Duration, Option<LitStr>),
    /// Whether SIGUSR1 prints the task tree (`dump_tree`, on by default).
    pub(crate) dump_tree: bool,
    /// `crate = …`: the path of the runtime crate.
    pub(crate) support: Support,
}

impl EntryFn {
    pub(crate) fn new(
        entry: Entry,
        options: &[RawOption],
        mut item: ItemFn,
        errors: &Errors,
    ) -> Option<Self> {
        let attribute = entry.name();
        let mut fatal = false;
        if item.sig.asyncness.is_none() {
            errors.error_spanned_by(
                item.sig.fn_token,
                format!("`#[{attribute}]` goes on an `async fn`; add `async`"),
            );
            fatal = true;
        }
        if !item.sig.inputs.is_empty() {
            errors.error_spanned_by(
                &item.sig.inputs,
                format!("`#[{attribute}]` goes on a function without arguments"),
            );
            fatal = true;
        }
        let mut model = EntryFn {
            entry,
            flavor: match entry {
                Entry::Main => Flavor::MultiThread,
                Entry::Test => Flavor::CurrentThread,
            },
            worker_threads: None,
            start_paused: false,
            grace: (DEFAULT_GRACE, None),
            cancel_timeout: (DEFAULT_CANCEL_TIMEOUT, None),
            dump_tree: true,
            support: Support::Tethered,
            item: item.clone(),
        };
        let keys = match entry {
            Entry::Main => MAIN_KEYS,
            Entry::Test => TEST_KEYS,
        };
        for option in options::check_keys(options, keys, errors) {
            match option.key.to_string().as_str() {
                "flavor" => {
                    let Some(flavor) = errors.take(options::string(option, "\"current_thread\""))
                    else {
                        continue;
                    };
                    match flavor.value().as_str() {
                        "current_thread" => model.flavor = Flavor::CurrentThread,
                        "multi_thread" => model.flavor = Flavor::MultiThread,
                        "local" => model.flavor = Flavor::Local,
                        other => errors.error_spanned_by(
                            &flavor,
                            format!(
                                "unknown flavor `{other}`; expected `flavor = \"current_thread\" | \"multi_thread\" | \"local\"`"
                            ),
                        ),
                    }
                }
                "worker_threads" => {
                    model.worker_threads = errors.take(options::positive_integer(option));
                }
                "start_paused" => {
                    model.start_paused = errors.take(options::boolean(option)).unwrap_or(false);
                }
                "grace" => {
                    if let Some((grace, literal)) = errors.take(options::duration(option)) {
                        model.grace = (grace, Some(literal));
                    }
                }
                "cancel_timeout" => {
                    if let Some((limit, literal)) = errors.take(options::duration(option)) {
                        model.cancel_timeout = (limit, Some(literal));
                    }
                }
                "dump_tree" => {
                    model.dump_tree = errors.take(options::boolean(option)).unwrap_or(true);
                }
                "crate" => {
                    if let Some(support) = errors.take(Support::from_option(option)) {
                        model.support = support;
                    }
                }
                _ => {}
            }
        }
        let threads_option = options.iter().find(|option| option.key == "worker_threads");
        if let (Flavor::CurrentThread | Flavor::Local, Some(_), Some(option)) =
            (model.flavor, model.worker_threads, threads_option)
        {
            errors.error_spanned_by(
                &option.key,
                "`worker_threads` needs `flavor = \"multi_thread\"`",
            );
        }
        if fatal {
            return None;
        }
        let locals = model.flavor == Flavor::Local;
        body::prepare(&mut item.block, &model.support, errors, locals);
        model.item = item;
        Some(model)
    }
}
