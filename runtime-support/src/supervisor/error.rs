//! What a supervisor returns: [`Supervised`] or [`SupervisorError`].

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use super::shutdown::ShutdownReport;
use crate::error::{PanicPayload, TaskFailure, nesting};

/// A supervisor that shut down without failing.
#[derive(Debug)]
#[non_exhaustive]
pub struct Supervised<T> {
    /// The body's value, if it returned before the shutdown cancelled it.
    pub value: Option<T>,
    /// How the shutdown went.
    pub report: ShutdownReport,
}

/// A supervisor that failed: a static child needed more restarts than the
/// intensity limit allows, or the body panicked. Its children were shut
/// down as usual; the report says how.
///
/// Propagate it with `?` to make it the enclosing scope's failure.
#[derive(Debug)]
pub struct SupervisorError {
    kind: SupervisorErrorKind,
    report: ShutdownReport,
}

/// Why a supervisor failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SupervisorErrorKind {
    /// A static child needed more than `max_restarts` restarts within
    /// `within` (OTP's restart intensity).
    RestartIntensity {
        /// The child whose restart passed the limit.
        child: String,
        /// Where its [`ChildSpec`](crate::ChildSpec) was made.
        location: &'static Location<'static>,
        /// The limit.
        max_restarts: u32,
        /// The limit's window.
        within: Duration,
        /// The child's latest failures, oldest first (up to five).
        last_failures: Vec<TaskFailure>,
    },
    /// The body panicked.
    BodyPanicked(PanicPayload),
}

impl SupervisorError {
    pub(crate) fn new(kind: SupervisorErrorKind, report: ShutdownReport) -> Self {
        SupervisorError { kind, report }
    }

    /// Why the supervisor failed.
    pub fn kind(&self) -> &SupervisorErrorKind {
        &self.kind
    }

    /// How the shutdown that followed went.
    pub fn report(&self) -> &ShutdownReport {
        &self.report
    }

    /// The child that passed the intensity limit, if that is why.
    pub fn child(&self) -> Option<&str> {
        match &self.kind {
            SupervisorErrorKind::RestartIntensity { child, .. } => Some(child),
            SupervisorErrorKind::BodyPanicked(_) => None,
        }
    }
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let supervisor = self.report.supervisor().unwrap_or("supervisor");
        // Supervisors nested in supervisors' children: the outer levels.
        let Some(_level) = nesting::enter() else {
            return write!(
                f,
                "supervisor `{supervisor}` failed (and more nested errors, not shown)"
            );
        };
        match &self.kind {
            SupervisorErrorKind::RestartIntensity {
                child,
                location,
                max_restarts,
                within,
                last_failures,
            } => {
                write!(
                    f,
                    "supervisor `{supervisor}` failed: child `{child}` (declared at {location}) \
                     needed more than {max_restarts} restarts within {within:?}"
                )?;
                for failure in last_failures {
                    write!(f, "\n  {}", failure.summary())?;
                }
                Ok(())
            }
            SupervisorErrorKind::BodyPanicked(payload) => {
                write!(
                    f,
                    "supervisor `{supervisor}` failed: its body panicked: {payload}"
                )
            }
        }
    }
}

impl Error for SupervisorError {}

impl From<SupervisorError> for std::io::Error {
    fn from(error: SupervisorError) -> Self {
        std::io::Error::other(error)
    }
}
