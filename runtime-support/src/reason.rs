//! [`CancelReason`]: who asked for a cancellation, where, and why.
//!
//! Every stop and every cancel in tethered carries a reason. A reason is cheap
//! to clone (one `Arc`), records the source location of the code that asked
//! (captured with `#[track_caller]`, so call sites need no manual tagging),
//! the name of the task that asked, and the reason that led to it, so that a
//! cancellation three scopes deep still says where it started.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

/// What kind of event caused a cancellation.
///
/// # Examples
///
/// ```
/// use tethered::{CancelKind, CancelReason};
///
/// let reason = CancelReason::new(CancelKind::Shutdown).with_message("deploy");
/// assert_eq!(reason.kind(), CancelKind::Shutdown);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelKind {
    /// Code asked for it: `handle.cancel(..)`, `scope.cancel(..)`.
    Explicit,
    /// A deadline passed: a scope's `timeout`, a periodic run's timeout.
    Timeout,
    /// A sibling in the same scope failed, so the whole group is cancelled.
    SiblingFailed,
    /// The task's parent (scope or task) was cancelled; see [`CancelReason::cause`].
    ParentCancelled,
    /// The scope's body returned and the scope cancels what is left
    /// (`on_exit = cancel`).
    ScopeExit,
    /// A service is shutting down.
    Shutdown,
    /// A process signal (SIGINT, SIGTERM) asked for it.
    Signal,
    /// A periodic run was replaced by the next tick (`overlap = cancel`).
    Overlap,
    /// A scope's future was dropped before it finished (by `select!`,
    /// `tokio::time::timeout` or its task being cancelled).
    Dropped,
    /// The peer the work was for went away: a client closed its
    /// connection before its response was sent.
    Disconnected,
}

impl CancelKind {
    fn describe(self) -> &'static str {
        match self {
            CancelKind::Explicit => "cancelled",
            CancelKind::Timeout => "timed out",
            CancelKind::SiblingFailed => "sibling failed",
            CancelKind::ParentCancelled => "parent cancelled",
            CancelKind::ScopeExit => "scope exited",
            CancelKind::Shutdown => "shutdown",
            CancelKind::Signal => "signal",
            CancelKind::Overlap => "overlapped by the next run",
            CancelKind::Dropped => "scope dropped",
            CancelKind::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for CancelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a task or scope is being stopped or cancelled.
///
/// A reason holds a [`CancelKind`], an optional message, the source
/// [`Location`] of the code that asked, the name of the task that asked (when
/// it asked from inside a tethered task), and the reason that caused this one.
/// `Display` prints the whole chain, outermost first.
///
/// # Examples
///
/// ```
/// use tethered::{CancelKind, CancelReason};
///
/// let deadline = CancelReason::new(CancelKind::Timeout).with_message("after 5s");
/// let inherited = CancelReason::new(CancelKind::ParentCancelled).caused_by(deadline.clone());
///
/// assert_eq!(inherited.cause().unwrap().kind(), CancelKind::Timeout);
/// assert_eq!(inherited.root().kind(), CancelKind::Timeout);
/// let text = inherited.to_string();
/// assert!(text.starts_with("parent cancelled"));
/// assert!(text.contains("caused by: timed out: after 5s"));
/// ```
#[derive(Clone)]
pub struct CancelReason(Arc<ReasonInner>);

struct ReasonInner {
    kind: CancelKind,
    message: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    origin: Option<Cow<'static, str>>,
    cause: Option<CancelReason>,
    /// How many reasons the chain holds from this one, this one included,
    /// and its last one (when it is not this one): kept with each link, so
    /// that neither needs a walk down a chain that may be very long.
    length: usize,
    root: Option<CancelReason>,
}

impl ReasonInner {
    /// Records `cause` as the cause, and the chain it brings.
    fn set_cause(&mut self, cause: Option<CancelReason>) {
        self.length = cause
            .as_ref()
            .map_or(1, |cause| cause.0.length.saturating_add(1));
        self.root = cause.as_ref().map(|cause| cause.root().clone());
        self.cause = cause;
    }
}

impl CancelReason {
    /// A reason of the given kind, located at the caller.
    #[track_caller]
    pub fn new(kind: CancelKind) -> Self {
        Self::at(kind, Location::caller())
    }

    /// An [`Explicit`](CancelKind::Explicit) reason with a message, located at
    /// the caller.
    ///
    /// ```
    /// let reason = tethered::CancelReason::explicit("user pressed stop");
    /// assert_eq!(reason.message(), Some("user pressed stop"));
    /// ```
    #[track_caller]
    pub fn explicit(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(CancelKind::Explicit).with_message(message)
    }

    pub(crate) fn at(kind: CancelKind, location: &'static Location<'static>) -> Self {
        Self::raised_by(kind, location, crate::current::current_name())
    }

    /// A reason raised by tethered itself on behalf of `origin` (a scope's
    /// timeout, its exit, its being dropped), whatever code is running.
    pub(crate) fn raised_by(
        kind: CancelKind,
        location: &'static Location<'static>,
        origin: Option<Cow<'static, str>>,
    ) -> Self {
        CancelReason(Arc::new(ReasonInner {
            kind,
            message: None,
            location,
            origin,
            cause: None,
            length: 1,
            root: None,
        }))
    }

    /// The same reason with `message` attached.
    pub fn with_message(self, message: impl Into<Cow<'static, str>>) -> Self {
        self.map(|inner| inner.message = Some(message.into()))
    }

    /// The same reason, recorded as caused by `cause`.
    pub fn caused_by(self, cause: CancelReason) -> Self {
        self.map(|inner| inner.set_cause(Some(cause)))
    }

    /// The same reason, recorded as asked for by the task named `origin`.
    pub fn with_origin(self, origin: impl Into<Cow<'static, str>>) -> Self {
        self.map(|inner| inner.origin = Some(origin.into()))
    }

    fn map(self, edit: impl FnOnce(&mut ReasonInner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.0) {
            Ok(inner) => inner,
            Err(shared) => ReasonInner {
                kind: shared.kind,
                message: shared.message.clone(),
                location: shared.location,
                origin: shared.origin.clone(),
                cause: shared.cause.clone(),
                length: shared.length,
                root: shared.root.clone(),
            },
        };
        edit(&mut inner);
        CancelReason(Arc::new(inner))
    }

    /// What kind of event this is.
    pub fn kind(&self) -> CancelKind {
        self.0.kind
    }

    /// The message given with the reason, if any.
    pub fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }

    /// The source location of the code that asked for the cancellation.
    pub fn location(&self) -> &'static Location<'static> {
        self.0.location
    }

    /// The name of the task that asked, when it asked from inside a named
    /// tethered task.
    pub fn origin(&self) -> Option<&str> {
        self.0.origin.as_deref()
    }

    /// The reason that led to this one (for example the parent's reason of a
    /// [`ParentCancelled`](CancelKind::ParentCancelled) reason).
    pub fn cause(&self) -> Option<&CancelReason> {
        self.0.cause.as_ref()
    }

    /// This reason followed by its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &CancelReason> {
        std::iter::successors(Some(self), |reason| reason.cause())
    }

    /// The innermost cause: the event that started the chain.
    pub fn root(&self) -> &CancelReason {
        self.0.root.as_ref().unwrap_or(self)
    }

    /// Whether `self` and `other` are the same recorded reason (not merely
    /// equal-looking ones).
    pub fn same_as(&self, other: &CancelReason) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The reason a child receives when its parent is cancelled for `self`.
    ///
    /// Reasons a scope raises *about its own children* (a sibling failed, the
    /// scope exited, it shut down) reach those children unchanged (`raised_here`); any other
    /// reason, and any reason the parent itself inherited, reaches them as
    /// `ParentCancelled` caused by it, so the chain records every level.
    pub(crate) fn for_child(
        &self,
        parent_name: Option<Cow<'static, str>>,
        raised_here: bool,
    ) -> CancelReason {
        match self.kind() {
            CancelKind::SiblingFailed | CancelKind::ScopeExit | CancelKind::Shutdown
                if raised_here =>
            {
                self.clone()
            }
            _ => {
                let mut inner = ReasonInner {
                    kind: CancelKind::ParentCancelled,
                    message: None,
                    location: self.location(),
                    origin: parent_name,
                    cause: None,
                    length: 1,
                    root: None,
                };
                inner.set_cause(Some(self.clone()));
                CancelReason(Arc::new(inner))
            }
        }
    }

    fn fmt_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind())?;
        if let Some(message) = self.message() {
            write!(f, ": {message}")?;
        }
        write!(f, " (at {}", self.location())?;
        if let Some(origin) = self.origin() {
            write!(f, ", by `{origin}`")?;
        }
        f.write_str(")")
    }
}

/// How many links of a chain `Display` shows in full from its start; past
/// them, the root cause is shown and the links between are counted. A
/// chain is as long as the tree it came down is deep: shown whole (or even
/// walked whole), a tree of such reasons would print in time and text
/// quadratic in its depth.
const SHOWN_FROM_START: usize = 5;

impl fmt::Display for CancelReason {
    /// The chain, outermost first: `kind: message (at location, by
    /// \`origin\`); caused by: …`. In a chain longer than six links, the
    /// first five and the root cause are shown, and the others counted
    /// (`… 9,994 more causes …`); [`chain`](Self::chain) has them all.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = self.0.length.saturating_sub(SHOWN_FROM_START + 1);
        let shown = if hidden == 0 {
            self.0.length
        } else {
            SHOWN_FROM_START
        };
        for (depth, reason) in self.chain().take(shown).enumerate() {
            if depth > 0 {
                f.write_str("; caused by: ")?;
            }
            reason.fmt_one(f)?;
        }
        if hidden > 0 {
            let causes = if hidden == 1 { "cause" } else { "causes" };
            write!(f, "; … {hidden} more {causes} …; caused by: ")?;
            self.root().fmt_one(f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for CancelReason {
    /// Every link of the chain, as a list rather than nested: a chain can
    /// be longer than a thread's stack is deep.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Link<'a>(&'a CancelReason);
        impl fmt::Debug for Link<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("CancelReason")
                    .field("kind", &self.0.kind())
                    .field("message", &self.0.message())
                    .field("location", &format_args!("{}", self.0.location()))
                    .field("origin", &self.0.origin())
                    .finish()
            }
        }
        let mut links = self.chain().map(Link);
        let first = links
            .next()
            .unwrap_or_else(|| unreachable!("a chain starts with itself"));
        let mut debug = f.debug_struct("CancelReason");
        debug
            .field("kind", &first.0.kind())
            .field("message", &first.0.message())
            .field("location", &format_args!("{}", first.0.location()))
            .field("origin", &first.0.origin());
        let causes: Vec<Link<'_>> = links.collect();
        if !causes.is_empty() {
            debug.field("causes", &causes);
        }
        debug.finish()
    }
}

impl Drop for ReasonInner {
    fn drop(&mut self) {
        // Each cause held only by this chain is unlinked before it is
        // dropped: a long chain would otherwise be dropped recursively.
        let mut cause = self.cause.take();
        while let Some(reason) = cause {
            cause = Arc::try_unwrap(reason.0)
                .ok()
                .and_then(|mut inner| inner.cause.take());
        }
    }
}

/// Anything a cancel or stop call accepts as its reason.
///
/// Implemented for [`CancelReason`] (used as given), [`CancelKind`], and
/// message strings (an [`Explicit`](CancelKind::Explicit) reason). The
/// location recorded for kinds and strings is the call site of the method
/// that took them.
///
/// ```
/// use tethered::{CancelKind, IntoCancelReason};
///
/// let reason = "no longer needed".into_cancel_reason(std::panic::Location::caller());
/// assert_eq!(reason.kind(), CancelKind::Explicit);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cancel reason",
    label = "expected a message, a `CancelKind` or a `CancelReason`",
    note = "pass a message (`\"shutting down\"`, or a `String`), a kind (`CancelKind::Shutdown`), or a `CancelReason::new(kind).with_message(…)`"
)]
pub trait IntoCancelReason {
    /// Builds the reason; `location` is the caller of the cancelling method.
    fn into_cancel_reason(self, location: &'static Location<'static>) -> CancelReason;
}

impl IntoCancelReason for CancelReason {
    fn into_cancel_reason(self, _location: &'static Location<'static>) -> CancelReason {
        self
    }
}

impl IntoCancelReason for CancelKind {
    fn into_cancel_reason(self, location: &'static Location<'static>) -> CancelReason {
        CancelReason::at(self, location)
    }
}

impl IntoCancelReason for &'static str {
    fn into_cancel_reason(self, location: &'static Location<'static>) -> CancelReason {
        CancelReason::at(CancelKind::Explicit, location).with_message(self)
    }
}

impl IntoCancelReason for String {
    fn into_cancel_reason(self, location: &'static Location<'static>) -> CancelReason {
        CancelReason::at(CancelKind::Explicit, location).with_message(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_the_caller() {
        let reason = CancelReason::explicit("x");
        assert_eq!(reason.location().file(), file!());
        assert_eq!(reason.location().line(), line!() - 2);
    }

    /// A chain of `length` links, each caused by the next.
    fn chain_of(length: usize) -> CancelReason {
        let mut reason = CancelReason::new(CancelKind::Timeout).with_message("root");
        for _ in 1..length {
            reason = CancelReason::new(CancelKind::ParentCancelled).caused_by(reason);
        }
        reason
    }

    /// Runs `check` on a small stack (64 KiB): it must not recurse once
    /// per link.
    fn on_a_small_stack(check: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(check)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_chain_of_a_hundred_thousand_links_is_shown_debugged_and_dropped() {
        on_a_small_stack(|| {
            let reason = chain_of(100_000);
            let shown = reason.to_string();
            assert!(
                shown.contains("; … 99994 more causes …; caused by: "),
                "{shown}"
            );
            assert!(shown.ends_with(&format!(
                "timed out: root (at {})",
                reason.root().location()
            )));
            assert_eq!(shown.matches("caused by").count(), 5);
            assert_eq!(reason.root().message(), Some("root"));
            let debugged = format!("{reason:?}");
            assert_eq!(debugged.matches("CancelReason").count(), 100_000);
            assert_eq!(reason.chain().count(), 100_000);
            drop(reason);
        });
    }

    #[test]
    fn a_chain_of_six_links_is_shown_whole() {
        let shown = chain_of(6).to_string();
        assert_eq!(shown.matches("caused by").count(), 5);
        assert!(!shown.contains("more causes"));
        assert!(
            chain_of(7)
                .to_string()
                .contains("; … 1 more cause …; caused by: ")
        );
    }

    #[test]
    fn sibling_failure_reaches_only_the_siblings_unchanged() {
        let failed = CancelReason::new(CancelKind::SiblingFailed);
        assert!(
            failed
                .for_child(Some("scope".into()), true)
                .same_as(&failed)
        );
        let below = failed.for_child(Some("task".into()), false);
        assert_eq!(below.kind(), CancelKind::ParentCancelled);
        assert!(below.cause().unwrap().same_as(&failed));
        let timeout = CancelReason::new(CancelKind::Timeout);
        let child = timeout.for_child(Some("scope".into()), true);
        assert_eq!(child.kind(), CancelKind::ParentCancelled);
        assert!(child.cause().unwrap().same_as(&timeout));
        assert_eq!(child.origin(), Some("scope"));
    }
}
