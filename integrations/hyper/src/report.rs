//! What a server reports when it has drained: [`Served`], its [`Requests`]
//! and the [`RequestReport`] of every request its drain cut short.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{Method, Uri};
use slab::Slab;
use tethered::{CancelKind, CancelReason, ShutdownReport};
use tokio::time::Instant;

use crate::lock;
use crate::readiness::Readiness;

/// How a served server ended: its supervisor's [`ShutdownReport`] (one
/// entry per connection) and what became of the requests.
///
/// Its `Display` prints both, a line per connection and per request cut
/// short; the parts are also there as values:
///
/// ```
/// use tethered_hyper::{RequestEnd, Served};
///
/// fn alert_on(served: &Served) {
///     let requests = served.requests();
///     println!("{} of {} requests completed", requests.completed, requests.started);
///     for request in requests.cancelled.iter().chain(&requests.stragglers) {
///         let how = match request.end() {
///             RequestEnd::Cancelled(reason) => format!("cancelled: {reason}"),
///             _ => "still running".to_owned(),
///         };
///         eprintln!("{} {} from {} after {:?}: {how}", request.method(), request.path(), request.peer(), request.age());
///     }
/// }
/// ```
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
    started: Instant,
}

impl InFlight {
    fn report(self, peer: SocketAddr, end: RequestEnd) -> RequestReport {
        RequestReport {
            method: self.method,
            path: self.uri.path().to_owned(),
            peer,
            age: self.started.elapsed(),
            end,
        }
    }
}

/// The server's record of its requests: counts, the requests in flight
/// and, once it drains, the ones cancelled.
///
/// Each connection keeps its own counts and list of requests in flight,
/// which no other connection's requests touch: with requests ending on
/// every worker at once, shared counters bounce between the workers' caches
/// and a shared list's lock is contended, and a worker preempted while
/// holding it stalls the others. A connection's counts join the server's
/// totals when it is gone.
pub(crate) struct Log {
    shared: Mutex<Shared>,
    /// Recorded only while draining: a disconnect in normal operation is a
    /// count, not an entry that would grow the log for the server's life.
    cancelled: Mutex<Vec<RequestReport>>,
    /// Whether the server drains.
    draining: Readiness,
}

#[derive(Default)]
struct Shared {
    /// The counts of the connections that are gone.
    totals: Counts,
    /// The live connections: their counts, and their lists of requests in
    /// flight (for the stragglers at the end). A connection's entry leaves,
    /// its counts added to `totals`, when its last request is gone.
    live: Slab<(Arc<Counts>, Weak<ConnectionLog>)>,
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    disconnected: AtomicU64,
}

impl Counts {
    fn add(&self, other: &Counts) {
        for (total, count) in self.fields().into_iter().zip(other.fields()) {
            total.fetch_add(count.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    fn fields(&self) -> [&AtomicU64; 4] {
        [
            &self.started,
            &self.completed,
            &self.failed,
            &self.disconnected,
        ]
    }
}

/// How a request's handling ended, for [`ConnectionLog::end`].
pub(crate) enum Ending {
    Completed,
    Failed,
    Disconnected(CancelReason),
    Cancelled(CancelReason),
}

impl Log {
    pub(crate) fn new(draining: Readiness) -> Self {
        Log {
            shared: Mutex::default(),
            cancelled: Mutex::default(),
            draining,
        }
    }

    /// The record of a new connection's requests.
    pub(crate) fn connection(self: &Arc<Self>, peer: SocketAddr) -> Arc<ConnectionLog> {
        let counts = Arc::new(Counts::default());
        let mut shared = lock(&self.shared);
        let entry = shared.live.vacant_entry();
        let connection = Arc::new(ConnectionLog {
            server: self.clone(),
            slot: entry.key(),
            peer,
            counts: counts.clone(),
            in_flight: Mutex::default(),
        });
        entry.insert((counts, Arc::downgrade(&connection)));
        connection
    }

    /// Keeps a cancelled request for the report, while the server drains.
    fn cut_short(&self, request: InFlight, peer: SocketAddr, ending: Ending) {
        let (Ending::Disconnected(reason) | Ending::Cancelled(reason)) = ending else {
            return;
        };
        if self.draining.is_draining() {
            let report = request.report(peer, RequestEnd::Cancelled(reason));
            lock(&self.cancelled).push(report);
        }
    }

    /// The counts, the requests cancelled, and the ones still in flight as
    /// stragglers.
    pub(crate) fn requests(&self) -> Requests {
        let all = Counts::default();
        // The lists taken out under the lock, and dropped after it: the
        // last reference to one removes its entry.
        let live: Vec<Arc<ConnectionLog>> = {
            let shared = lock(&self.shared);
            all.add(&shared.totals);
            for (counts, _) in shared.live.iter().map(|(_, entry)| entry) {
                all.add(counts);
            }
            shared
                .live
                .iter()
                .filter_map(|(_, (_, connection))| connection.upgrade())
                .collect()
        };
        let stragglers = live
            .iter()
            .flat_map(|connection| {
                let in_flight = std::mem::take(&mut *lock(&connection.in_flight));
                in_flight
                    .into_iter()
                    .map(|(_, request)| request.report(connection.peer, RequestEnd::Straggler))
            })
            .collect();
        drop(live);
        let [started, completed, failed, disconnected] =
            all.fields().map(|count| count.load(Ordering::Relaxed));
        Requests {
            started,
            completed,
            failed,
            disconnected,
            cancelled: std::mem::take(&mut *lock(&self.cancelled)),
            stragglers,
        }
    }
}

/// One connection's record: its counts and its requests in flight.
pub(crate) struct ConnectionLog {
    server: Arc<Log>,
    /// Its entry in the server's `live`.
    slot: usize,
    peer: SocketAddr,
    counts: Arc<Counts>,
    in_flight: Mutex<Slab<InFlight>>,
}

impl ConnectionLog {
    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Records a request's start; the key ends it.
    pub(crate) fn start(&self, method: Method, uri: Uri) -> usize {
        self.counts.started.fetch_add(1, Ordering::Relaxed);
        lock(&self.in_flight).insert(InFlight {
            method,
            uri,
            started: Instant::now(),
        })
    }

    /// Records how the request under `key` ended.
    pub(crate) fn end(&self, key: usize, ending: Ending) {
        let Some(request) = lock(&self.in_flight).try_remove(key) else {
            return;
        };
        let counter = match &ending {
            Ending::Completed => &self.counts.completed,
            Ending::Failed => &self.counts.failed,
            Ending::Disconnected(_) => &self.counts.disconnected,
            Ending::Cancelled(_) => return self.server.cut_short(request, self.peer, ending),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if matches!(ending, Ending::Disconnected(_)) {
            self.server.cut_short(request, self.peer, ending);
        }
    }
}

impl Drop for ConnectionLog {
    fn drop(&mut self) {
        // Under the lock: a report counts these either here or in `totals`.
        let mut shared = lock(&self.server.shared);
        shared.totals.add(&self.counts);
        shared.live.try_remove(self.slot);
    }
}
