//! [`ScopeError`]: every failure of a scope, none lost; [`TaskFailure`],
//! [`PanicPayload`] and [`TaskError`], the pieces it is made of.

use std::any::Any;
use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::reason::{CancelKind, CancelReason};
use crate::scope_report::ScopeReport;

/// The payload of a caught panic: its message, and the payload itself for
/// whoever wants to re-raise it.
///
/// Cloning shares the payload; [`take`](Self::take) hands it out once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// let error = Scope::run(async |scope| {
///     scope.spawn_named("indexer", async { panic!("disk on fire") });
/// })
/// .await
/// .unwrap_err();
/// let failure = &error.failures()[0];
/// assert_eq!(failure.task(), Some("indexer"));
/// let payload = failure.panic().unwrap();
/// assert_eq!(payload.message(), "disk on fire");
/// // The original payload can be taken once, e.g. to re-raise it.
/// assert!(payload.take().unwrap().downcast_ref::<&str>().is_some());
/// # }
/// ```
#[derive(Clone)]
pub struct PanicPayload(Arc<PanicInner>);

struct PanicInner {
    message: String,
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
            (*text).to_owned()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else if let Some(error) = payload.downcast_ref::<ScopeError>() {
            error.to_string()
        } else {
            "<panic payload that is not a string>".to_owned()
        };
        PanicPayload(Arc::new(PanicInner {
            message,
            payload: Mutex::new(Some(payload)),
        }))
    }

    /// The panic message (`"<panic payload that is not a string>"` when the
    /// payload was neither a `&str` nor a `String` nor a [`ScopeError`]).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Takes the original payload, e.g. to `downcast` it. Returns `None` when
    /// a clone of this value took it already.
    pub fn take(&self) -> Option<Box<dyn Any + Send>> {
        self.0
            .payload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Re-raises the panic with its original payload (or with its message, if
    /// the payload was taken already).
    pub fn resume_unwind(self) -> ! {
        match self.take() {
            Some(payload) => std::panic::resume_unwind(payload),
            None => std::panic::resume_unwind(Box::new(self.0.message.clone())),
        }
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PanicPayload")
            .field(&self.message())
            .finish()
    }
}

impl fmt::Display for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A child's error, type-erased and shared: the value the child returned in
/// `Err(..)`, reachable again with [`downcast_ref`](Self::downcast_ref).
///
/// The same value is shared by the child's [`Outcome::Failed`] and by the
/// scope's [`ScopeError`], so whoever looks finds the original.
///
/// [`Outcome::Failed`]: crate::Outcome::Failed
///
/// Any `Debug + Send + Sync + 'static` error can fail a task (`anyhow::Error`
/// and `Box<dyn Error + Send + Sync>` included); messages use its `Display`
/// when it has one, its `Debug` otherwise.
#[derive(Clone)]
pub struct TaskError {
    value: Arc<dyn Any + Send + Sync>,
    display: Formatter,
    debug: Formatter,
}

type Formatter = fn(&(dyn Any + Send + Sync), &mut fmt::Formatter<'_>) -> fmt::Result;

fn display_as<E: fmt::Display + 'static>(
    value: &(dyn Any + Send + Sync),
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    value
        .downcast_ref::<E>()
        .map_or(Ok(()), |error| fmt::Display::fmt(error, f))
}

fn debug_as<E: fmt::Debug + 'static>(
    value: &(dyn Any + Send + Sync),
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    value
        .downcast_ref::<E>()
        .map_or(Ok(()), |error| fmt::Debug::fmt(error, f))
}

impl TaskError {
    /// An error shown through its `Display`.
    pub(crate) fn new<E>(error: Arc<E>) -> Self
    where
        E: fmt::Display + fmt::Debug + Send + Sync + 'static,
    {
        TaskError {
            value: error,
            display: display_as::<E>,
            debug: debug_as::<E>,
        }
    }

    /// An error that has only `Debug`, shown through it.
    pub(crate) fn from_debug<E>(error: Arc<E>) -> Self
    where
        E: fmt::Debug + Send + Sync + 'static,
    {
        TaskError {
            value: error,
            display: debug_as::<E>,
            debug: debug_as::<E>,
        }
    }

    /// The error as its original type, if it is an `E`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::io;
    /// use tethered::Scope;
    ///
    /// let error = Scope::run(async |scope| {
    ///     scope.spawn_fallible(async { Err::<(), _>(io::Error::other("refused")) });
    /// })
    /// .await
    /// .unwrap_err();
    /// let io = error.failures()[0].error().unwrap().downcast_ref::<io::Error>().unwrap();
    /// assert_eq!(io.to_string(), "refused");
    /// # }
    /// ```
    pub fn downcast_ref<E: 'static>(&self) -> Option<&E> {
        self.value.downcast_ref::<E>()
    }

    /// Whether the error is an `E`.
    pub fn is<E: 'static>(&self) -> bool {
        self.downcast_ref::<E>().is_some()
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.debug)(&*self.value, f)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.display)(&*self.value, f)
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        // A nested scope's error keeps its own chain reachable.
        self.downcast_ref::<ScopeError>()
            .map(|nested| nested as &(dyn Error + 'static))
    }
}

/// What went wrong in one [`TaskFailure`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FailureKind {
    /// The task returned `Err(..)`.
    Error(TaskError),
    /// The task panicked.
    Panic(PanicPayload),
    /// A `defer` cleanup returned `Err(..)`.
    CleanupError(TaskError),
    /// A `defer` cleanup panicked.
    CleanupPanic(PanicPayload),
    /// A `defer` cleanup did not finish within the scope's cleanup timeout
    /// and was dropped.
    CleanupTimedOut(Duration),
}

/// One failure inside a scope: which task (or cleanup), where it was spawned
/// (or registered), and what went wrong.
///
/// Cloning is cheap (a reference count): the failure is shared, not copied.
#[derive(Clone)]
pub struct TaskFailure(Arc<FailureInner>);

// Behind an `Arc`, a failure is one word wherever it travels: a supervised
// child's exit, and the tokio task holding it, stay small on the common path
// where nothing failed.
struct FailureInner {
    task: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    kind: FailureKind,
}

impl TaskFailure {
    pub(crate) fn new(
        task: Option<&str>,
        location: &'static Location<'static>,
        kind: FailureKind,
    ) -> Self {
        TaskFailure(Arc::new(FailureInner {
            task: task.map(|name| Cow::Owned(name.to_owned())),
            location,
            kind,
        }))
    }

    /// The failed task's name, if it had one.
    pub fn task(&self) -> Option<&str> {
        self.0.task.as_deref()
    }

    /// Where the task was spawned (or the cleanup registered).
    pub fn location(&self) -> &'static Location<'static> {
        self.0.location
    }

    /// What went wrong.
    pub fn kind(&self) -> &FailureKind {
        &self.0.kind
    }

    /// The error, if the task or cleanup returned one.
    pub fn error(&self) -> Option<&TaskError> {
        match &self.0.kind {
            FailureKind::Error(error) | FailureKind::CleanupError(error) => Some(error),
            _ => None,
        }
    }

    /// The panic, if the task or cleanup panicked.
    pub fn panic(&self) -> Option<&PanicPayload> {
        match &self.0.kind {
            FailureKind::Panic(payload) | FailureKind::CleanupPanic(payload) => Some(payload),
            _ => None,
        }
    }

    /// Whether this failure came from a `defer` cleanup.
    pub fn is_cleanup(&self) -> bool {
        matches!(
            self.0.kind,
            FailureKind::CleanupError(_)
                | FailureKind::CleanupPanic(_)
                | FailureKind::CleanupTimedOut(_)
        )
    }

    /// One line: who, what.
    pub(crate) fn summary(&self) -> String {
        let who = match (&self.0.task, self.is_cleanup()) {
            (_, true) => "cleanup".to_owned(),
            (Some(name), false) => format!("task `{name}`"),
            (None, false) => "unnamed task".to_owned(),
        };
        format!("{who} {}", self.what())
    }

    /// What happened, without who: `failed: …`, `panicked: …`.
    pub(crate) fn what(&self) -> String {
        match &self.0.kind {
            FailureKind::Error(error) | FailureKind::CleanupError(error) => {
                format!("failed: {error}")
            }
            FailureKind::Panic(payload) | FailureKind::CleanupPanic(payload) => {
                format!("panicked: {payload}")
            }
            FailureKind::CleanupTimedOut(limit) => format!("timed out after {limit:?}"),
        }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (spawned at {})", self.summary(), self.0.location)
    }
}

impl fmt::Debug for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFailure")
            .field("task", &self.0.task)
            .field("location", &self.0.location)
            .field("kind", &self.0.kind)
            .finish()
    }
}

/// Why a scope ended without its body's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeErrorKind {
    /// At least one child or cleanup failed.
    Failed,
    /// The scope's own `timeout` passed.
    TimedOut,
    /// The scope was cancelled (by its own `cancel`, or from outside while
    /// its future kept being polled) before the body produced its value.
    Cancelled,
}

/// How a scope failed: every failure of its children and cleanups, in the
/// order they happened, plus the reason the scope was cancelled, if it was.
///
/// Nothing is flattened: a nested scope's `ScopeError` appears here as one
/// failure whose [`TaskError`] downcasts to that `ScopeError` (or, for a
/// `#[scoped]` fn that raised it, whose panic payload does).
///
/// Errors can nest as deep as scopes do, deeper than a thread's stack:
/// `Display` and `Debug` show the outermost eight levels and say that more
/// are nested (walk [`failures`](Self::failures), or `Error::source`, for
/// the rest), and dropping an error does not recurse.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::{CancelKind, Scope};
///
/// let error = Scope::run(async |scope| {
///     scope.spawn_fallible_named("parser", async { Err::<(), _>("bad header") });
///     scope.spawn_named("reader", std::future::pending::<()>());
/// })
/// .await
/// .unwrap_err();
///
/// assert_eq!(error.failures().len(), 1);
/// assert_eq!(error.failures()[0].task(), Some("parser"));
/// // The failure cancelled the scope, naming the child that failed.
/// assert_eq!(error.reason().unwrap().kind(), CancelKind::SiblingFailed);
/// assert_eq!(error.reason().unwrap().origin(), Some("parser"));
/// # }
/// ```
#[derive(Clone)]
pub struct ScopeError {
    scope: Option<Cow<'static, str>>,
    location: &'static Location<'static>,
    kind: ScopeErrorKind,
    reason: Option<CancelReason>,
    failures: Vec<TaskFailure>,
    report: Option<Arc<ScopeReport>>,
}

impl ScopeError {
    /// The error a scope ends with; counted in the metrics, when they are
    /// on.
    pub(crate) fn new(
        scope: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        reason: Option<CancelReason>,
        failures: Vec<TaskFailure>,
    ) -> Self {
        let kind = if !failures.is_empty() {
            ScopeErrorKind::Failed
        } else if reason
            .as_ref()
            .is_some_and(|reason| reason.kind() == CancelKind::Timeout)
        {
            ScopeErrorKind::TimedOut
        } else {
            ScopeErrorKind::Cancelled
        };
        crate::metrics::scope_ended(scope.as_ref(), location, kind);
        ScopeError {
            scope,
            location,
            kind,
            reason,
            failures,
            report: None,
        }
    }

    pub(crate) fn with_report(mut self, report: ScopeReport) -> Self {
        self.report = Some(Arc::new(report));
        self
    }

    /// How each of the scope's children ended: every child that failed or
    /// was cancelled, and, in a scope that keeps a report
    /// ([`ScopeBuilder::report`](crate::ScopeBuilder::report)), every child
    /// that completed. See [`ScopeReport`].
    pub fn report(&self) -> Option<&ScopeReport> {
        self.report.as_deref()
    }

    /// Why the scope failed.
    pub fn kind(&self) -> ScopeErrorKind {
        self.kind
    }

    /// The scope's name, if it had one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Where the scope was created.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Every failure, in the order they happened. The first one is the one
    /// that cancelled the scope.
    pub fn failures(&self) -> &[TaskFailure] {
        &self.failures
    }

    /// The reason the scope was cancelled, if it was.
    pub fn reason(&self) -> Option<&CancelReason> {
        self.reason.as_ref()
    }

    /// Whether the scope's own timeout ended it.
    pub fn is_timeout(&self) -> bool {
        self.kind == ScopeErrorKind::TimedOut
    }

    /// Whether the scope was cancelled without any failure.
    pub fn is_cancelled(&self) -> bool {
        self.kind == ScopeErrorKind::Cancelled
    }

    /// The first failure's error downcast to `E`, if there is one of that type.
    pub fn downcast_ref<E: 'static>(&self) -> Option<&E> {
        self.failures
            .iter()
            .find_map(|failure| failure.error()?.downcast_ref::<E>())
    }
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(name) => write!(f, "scope `{name}`")?,
            None => write!(f, "scope at {}", self.location)?,
        }
        let Some(_level) = nesting::enter() else {
            return f.write_str(" failed (and more nested scope errors, not shown)");
        };
        match self.kind {
            ScopeErrorKind::Failed => {
                let count = self.failures.len();
                write!(
                    f,
                    " failed ({count} failure{})",
                    if count == 1 { "" } else { "s" }
                )?;
                for failure in &self.failures {
                    write!(f, "; {failure}")?;
                }
                Ok(())
            }
            ScopeErrorKind::TimedOut | ScopeErrorKind::Cancelled => match &self.reason {
                Some(reason) => write!(f, " ended early: {reason}"),
                None => f.write_str(" ended early"),
            },
        }
    }
}

impl fmt::Debug for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(_level) = nesting::enter() else {
            return f
                .debug_struct("ScopeError")
                .field("scope", &self.scope)
                .finish_non_exhaustive();
        };
        f.debug_struct("ScopeError")
            .field("scope", &self.scope)
            .field("location", &self.location)
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .field("failures", &self.failures)
            .finish()
    }
}

impl Drop for ScopeError {
    fn drop(&mut self) {
        // The failures of nested errors that nothing else holds are moved
        // onto one list and dropped from there, rather than each error
        // dropping the ones inside it: no recursion, however deep.
        let mut failures = nested_failures(self);
        while let Some(failure) = failures.pop() {
            let Ok(inner) = Arc::try_unwrap(failure.0) else {
                continue;
            };
            let nested = match inner.kind {
                FailureKind::Error(error) | FailureKind::CleanupError(error) => {
                    let mut value = error.value;
                    Arc::get_mut(&mut value)
                        .and_then(|value| value.downcast_mut::<ScopeError>())
                        .map(nested_failures)
                }
                FailureKind::Panic(payload) | FailureKind::CleanupPanic(payload) => {
                    Arc::try_unwrap(payload.0)
                        .ok()
                        .and_then(|inner| inner.payload.into_inner().ok().flatten())
                        .and_then(|payload| payload.downcast::<ScopeError>().ok())
                        .map(|mut nested| nested_failures(&mut nested))
                }
                FailureKind::CleanupTimedOut(_) => None,
            };
            failures.extend(nested.into_iter().flatten());
        }
    }
}

/// The failures `error` holds, taken out of it: its own, and those of its
/// report's failed children (clones of the same failures, which must be let
/// go of too before the errors nested in them are owned by one list).
fn nested_failures(error: &mut ScopeError) -> Vec<TaskFailure> {
    let mut failures = std::mem::take(&mut error.failures);
    if let Some(report) = error
        .report
        .take()
        .and_then(|report| Arc::try_unwrap(report).ok())
    {
        failures.extend(report.into_failures());
    }
    failures
}

/// How many errors nested in one another (scope errors, supervisor errors)
/// `Display` and `Debug` show.
pub(crate) mod nesting {
    use std::cell::Cell;

    const SHOWN: usize = 8;

    thread_local! {
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }

    /// One more level being shown, or `None` when enough are.
    pub(crate) fn enter() -> Option<Level> {
        let depth = DEPTH.get();
        if depth >= SHOWN {
            return None;
        }
        DEPTH.set(depth + 1);
        Some(Level)
    }

    pub(crate) struct Level;

    impl Drop for Level {
        fn drop(&mut self) {
            DEPTH.set(DEPTH.get() - 1);
        }
    }
}

impl Error for ScopeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.failures
            .first()
            .and_then(|failure| failure.error())
            .map(|error| error as &(dyn Error + 'static))
    }
}

/// So that `#[scoped]` fns returning `io::Result<T>` receive their children's
/// failures: the `io::Error` (kind `Other`) wraps the [`ScopeError`], which
/// `get_ref().downcast_ref::<ScopeError>()` gives back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// #[tethered::scoped]
/// async fn copy() -> std::io::Result<u64> {
///     spawn!("reader", async { Err::<(), _>(std::io::Error::other("disk gone")) });
///     Ok(0)
/// }
///
/// let error = copy().await.unwrap_err();
/// let scope = error.get_ref().unwrap().downcast_ref::<tethered::ScopeError>().unwrap();
/// assert_eq!(scope.failures()[0].task(), Some("reader"));
/// # }
/// ```
impl From<ScopeError> for std::io::Error {
    fn from(error: ScopeError) -> Self {
        std::io::Error::other(error)
    }
}

/// The error of spawning into a scope that no longer accepts children: it is
/// closing (cancelled) or closed (every child ended after its body returned).
///
/// The future is dropped without being polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    scope: Option<String>,
}

impl SpawnError {
    pub(crate) fn closed(scope: Option<&str>) -> Self {
        SpawnError {
            scope: scope.map(str::to_owned),
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(name) => write!(
                f,
                "scope `{name}` is closing or closed; the task was not started"
            ),
            None => f.write_str("the scope is closing or closed; the task was not started"),
        }
    }
}

impl Error for SpawnError {}
