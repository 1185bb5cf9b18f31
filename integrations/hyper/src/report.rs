//! What a server reports when it has drained: [`Served`], its [`Requests`]
//! and the [`RequestReport`] of every request its drain cut short.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, Uri};
use slab::Slab;
use tethered::{CancelKind, CancelReason, ShutdownReport};
use tokio::time::Instant;

use crate::lock;
use crate::readiness::Readiness;

/// How a served server ended: its supervisor's [`ShutdownReport`] (one
/// entry per connection) and what became of the requests.
#[derive(Debug, Clone)]
pub struct Served {
    report: ShutdownReport,
    requests: Requests,
}

impl Served {
    pub(crate) fn new(report: ShutdownReport, requests: Requests) -> Self {
        Served { report, requests }
    }

    /// The supervisor's report: how each connection alive when the drain
    /// began came out of it.
    pub fn report(&self) -> &ShutdownReport {
        &self.report
    }

    /// The request counts, and the requests the drain cut short.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.report, self.requests)
    }
}

/// What became of a server's requests, over its whole life.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Requests {
    /// Requests received.
    pub started: u64,
    /// Requests whose handler returned a response (of any status).
    pub completed: u64,
    /// Requests whose handler failed (panicked, or one of its children
    /// failed): each was answered 500.
    pub failed: u64,
    /// Requests whose client went away before the response was sent.
    pub disconnected: u64,
    /// The requests cancelled while the server drained, in the order they
    /// ended: cancelled when the grace was over, or whose client went away.
    pub cancelled: Vec<RequestReport>,
    /// The requests still running when the server gave up waiting.
    pub stragglers: Vec<RequestReport>,
}

impl fmt::Display for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests: {} started, {} completed, {} failed, {} disconnected; \
             {} cancelled in the drain, {} still running",
            self.started,
            self.completed,
            self.failed,
            self.disconnected,
            self.cancelled.len(),
            self.stragglers.len(),
        )?;
        for request in self.cancelled.iter().chain(&self.stragglers) {
            write!(f, "\n  {request}")?;
        }
        Ok(())
    }
}

/// One request a drain cut short.
#[derive(Debug, Clone)]
pub struct RequestReport {
    method: Method,
    path: String,
    peer: SocketAddr,
    age: Duration,
    end: RequestEnd,
}

/// How a request the drain cut short ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RequestEnd {
    /// Cancelled, for this reason: the drain's, once its grace was over, or
    /// the client's going away.
    Cancelled(CancelReason),
    /// Still running when the server gave up waiting for it.
    Straggler,
}

impl RequestReport {
    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// How long the request had been running when it ended (or, for a
    /// straggler, when the report was made).
    pub fn age(&self) -> Duration {
        self.age
    }

    /// How it ended.
    pub fn end(&self) -> &RequestEnd {
        &self.end
    }

    /// The reason it was cancelled, unless it is a straggler.
    pub fn reason(&self) -> Option<&CancelReason> {
        match &self.end {
            RequestEnd::Cancelled(reason) => Some(reason),
            RequestEnd::Straggler => None,
        }
    }
}

impl fmt::Display for RequestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Milliseconds: nanoseconds are noise in a report.
        let age = Duration::from_millis(self.age.as_millis().try_into().unwrap_or(u64::MAX));
        write!(f, "{} {} from {}: ", self.method, self.path, self.peer)?;
        match &self.end {
            RequestEnd::Cancelled(reason) => {
                // The request inherits its connection's reason: the links
                // that only say so are left out.
                let said = reason
                    .chain()
                    .find(|link| link.kind() != CancelKind::ParentCancelled)
                    .unwrap_or(reason);
                write!(f, "cancelled after {age:?}: {said}")
            }
            RequestEnd::Straggler => write!(f, "STILL RUNNING, for {age:?}"),
        }
    }
}

/// A request in flight, as the log keeps it: its URI is shared with the
/// request (a clone costs no allocation), and its path copied only if it
/// is reported.
struct InFlight {
    method: Method,
    uri: Uri,
    peer: SocketAddr,
    started: Instant,
}

impl InFlight {
    fn report(self, end: RequestEnd) -> RequestReport {
        RequestReport {
            method: self.method,
            path: self.uri.path().to_owned(),
            peer: self.peer,
            age: self.started.elapsed(),
            end,
        }
    }
}

/// The server's record of its requests: counts, the requests in flight,
/// and (once it drains) the ones cancelled. Shared by every request.
pub(crate) struct Log {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    disconnected: AtomicU64,
    in_flight: Mutex<Slab<InFlight>>,
    /// Recorded only while draining: a disconnect in normal operation is a
    /// count, not an entry that would grow the log for the server's life.
    cancelled: Mutex<Vec<RequestReport>>,
    /// Whether the server drains.
    draining: Readiness,
}

/// How a request's handling ended, for [`Log::end`].
pub(crate) enum Ending {
    Completed,
    Failed,
    Disconnected(CancelReason),
    Cancelled(CancelReason),
}

impl Log {
    pub(crate) fn new(draining: Readiness) -> Self {
        Log {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            in_flight: Mutex::default(),
            cancelled: Mutex::default(),
            draining,
        }
    }

    /// Records a request's start; the key ends it.
    pub(crate) fn start(&self, method: Method, uri: Uri, peer: SocketAddr) -> usize {
        self.started.fetch_add(1, Ordering::Relaxed);
        lock(&self.in_flight).insert(InFlight {
            method,
            uri,
            peer,
            started: Instant::now(),
        })
    }

    /// Records how the request under `key` ended.
    pub(crate) fn end(&self, key: usize, ending: Ending) {
        let Some(request) = lock(&self.in_flight).try_remove(key) else {
            return;
        };
        let counter = match &ending {
            Ending::Completed => &self.completed,
            Ending::Failed => &self.failed,
            Ending::Disconnected(_) => &self.disconnected,
            Ending::Cancelled(_) => return self.cut_short(request, ending),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if matches!(ending, Ending::Disconnected(_)) {
            self.cut_short(request, ending);
        }
    }

    /// Keeps a cancelled request for the report, while the server drains.
    fn cut_short(&self, request: InFlight, ending: Ending) {
        let (Ending::Disconnected(reason) | Ending::Cancelled(reason)) = ending else {
            return;
        };
        if self.draining.is_draining() {
            lock(&self.cancelled).push(request.report(RequestEnd::Cancelled(reason)));
        }
    }

    /// The counts, the requests cancelled, and the ones still in flight as
    /// stragglers.
    pub(crate) fn requests(&self) -> Requests {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let stragglers = std::mem::take(&mut *lock(&self.in_flight))
            .into_iter()
            .map(|(_, request)| request.report(RequestEnd::Straggler))
            .collect();
        Requests {
            started: read(&self.started),
            completed: read(&self.completed),
            failed: read(&self.failed),
            disconnected: read(&self.disconnected),
            cancelled: std::mem::take(&mut *lock(&self.cancelled)),
            stragglers,
        }
    }
}
