//! Helper tasks that live exactly as long as the code they help: a simulated
//! websocket connection, written as a `#[scoped(on_exit = cancel)]` fn.
//!
//! ```text
//! scope `connection`       the main loop: reads frames until the peer closes
//! ├── task `keepalive`     sends a ping every 100 ms
//! ├── task `event-bus`     forwards events from a broadcast channel
//! └── defer                closes the socket (takes 20 ms)
//! ```
//!
//! The peer sends two text frames, then a close frame at 420 ms. The main
//! loop ends and the fn's body returns; with `on_exit = cancel` the scope
//! then cancels the helpers, which never end on their own, with a
//! [`ScopeExit`](tethered::CancelKind::ScopeExit) reason, waits for them,
//! and runs the `defer!` cleanup, which closes the socket. Everything that
//! happens is written to a timeline; [`run`] returns it in a [`Report`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethered::{CancelReason, scoped};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, sleep, sleep_until};

/// A frame from the peer.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A text message.
    Text(&'static str),
    /// The peer closes the connection.
    Close,
}

/// Something that happened, and when.
#[derive(Debug, Clone)]
pub struct Event {
    /// When, counted from the start.
    pub at: Duration,
    /// What.
    pub what: String,
}

/// A helper task that ended, and why.
#[derive(Debug, Clone)]
pub struct HelperExit {
    /// The helper's name.
    pub helper: &'static str,
    /// Why it was cancelled (`None`: it returned on its own).
    pub reason: Option<CancelReason>,
}

/// Everything the example observed.
#[derive(Debug)]
pub struct Report {
    /// Everything that happened on the connection, in order.
    pub timeline: Vec<Event>,
    /// Every frame sent to the peer, in order.
    pub sent: Vec<String>,
    /// The helpers, in the order they ended.
    pub helpers: Vec<HelperExit>,
    /// The reason the `defer!` cleanup saw: why its scope was cancelled.
    pub cleanup_saw: Option<CancelReason>,
    /// How many text frames the main loop handled.
    pub frames_received: u32,
    /// How long the whole example took.
    pub elapsed: Duration,
}

/// Runs a connection against a simulated peer and event bus.
pub async fn run() -> Report {
    let socket = Socket::new();
    let started = socket.0.started;
    // Sleeps until `millis` after the start (exact on paused time).
    let at_ms = move |millis: u64| sleep_until(started + Duration::from_millis(millis));
    let (peer, incoming) = mpsc::channel(8);
    let (bus, subscription) = broadcast::channel(8);

    // The other side of the socket: two messages, then a close frame.
    let talk = async move {
        for (at, frame) in [
            (50, Frame::Text("subscribe orders")),
            (150, Frame::Text("hello")),
            (420, Frame::Close),
        ] {
            at_ms(at).await;
            if peer.send(frame).await.is_err() {
                break;
            }
        }
    };
    // Events published elsewhere in the service while the connection is up.
    let publish = async {
        for (at, event) in [(120, "order #17 shipped"), (260, "order #18 packed")] {
            at_ms(at).await;
            let _ = bus.send(event.to_owned());
        }
    };

    let (frames_received, (), ()) = tokio::join!(
        connection(socket.clone(), incoming, subscription),
        talk,
        publish
    );
    socket.report(frames_received)
}

/// One connection. The body is the main loop; the helpers live as long as
/// it does (`on_exit = cancel`), and the socket is closed whatever happens.
#[scoped(name = "connection", on_exit = cancel, cleanup_timeout = "1s")]
async fn connection(
    socket: Socket,
    mut incoming: mpsc::Receiver<Frame>,
    events: broadcast::Receiver<String>,
) -> u32 {
    socket.log("connection open");
    spawn!("keepalive", keepalive(socket.clone()));
    spawn!("event-bus", forward_events(socket.clone(), events));
    let closing = socket.clone();
    defer!(async move { closing.close().await });

    let mut received = 0;
    while let Some(frame) = incoming.recv().await {
        match frame {
            Frame::Text(text) => {
                received += 1;
                socket.log(format!("received {text:?}"));
                socket.send(format!("ack {text:?}"));
            }
            Frame::Close => {
                socket.log("peer sent close; the main loop ends");
                break;
            }
        }
    }
    received
}

/// Pings the peer every 100 ms, forever: only cancellation ends it.
async fn keepalive(socket: Socket) {
    let _exit = socket.on_exit("keepalive");
    loop {
        sleep(Duration::from_millis(100)).await;
        socket.send("ping".to_owned());
    }
}

/// Forwards every event of the bus to the peer, until the bus closes (it
/// does not, here: cancellation ends it).
async fn forward_events(socket: Socket, mut events: broadcast::Receiver<String>) {
    let _exit = socket.on_exit("event-bus");
    while let Ok(event) = events.recv().await {
        socket.send(format!("event {event:?}"));
    }
}

/// The simulated socket, shared by the connection and its helpers; it keeps
/// the timeline.
#[derive(Clone)]
struct Socket(Arc<SocketState>);

struct SocketState {
    started: Instant,
    timeline: Mutex<Vec<Event>>,
    sent: Mutex<Vec<String>>,
    helpers: Mutex<Vec<HelperExit>>,
    cleanup_saw: Mutex<Option<CancelReason>>,
}

impl Socket {
    fn new() -> Self {
        Socket(Arc::new(SocketState {
            started: Instant::now(),
            timeline: Mutex::default(),
            sent: Mutex::default(),
            helpers: Mutex::default(),
            cleanup_saw: Mutex::default(),
        }))
    }

    fn log(&self, what: impl Into<String>) {
        let at = self.0.started.elapsed();
        lock(&self.0.timeline).push(Event {
            at,
            what: what.into(),
        });
    }

    fn send(&self, frame: String) {
        self.log(format!("sent {frame}"));
        lock(&self.0.sent).push(frame);
    }

    /// A guard that records, when the helper's future is dropped, why.
    fn on_exit(&self, helper: &'static str) -> OnExit {
        OnExit {
            helper,
            socket: self.clone(),
        }
    }

    /// The `defer!` cleanup: runs after both helpers have ended.
    async fn close(&self) {
        // In a cleanup, `current()` answers for the scope being cleaned up.
        let reason = tethered::current().cancel_reason();
        self.log("cleanup: sending the close frame");
        sleep(Duration::from_millis(20)).await; // the peer acknowledges it
        self.log("cleanup: socket closed");
        *lock(&self.0.cleanup_saw) = reason;
    }

    fn report(&self, frames_received: u32) -> Report {
        Report {
            timeline: lock(&self.0.timeline).clone(),
            sent: lock(&self.0.sent).clone(),
            helpers: lock(&self.0.helpers).clone(),
            cleanup_saw: lock(&self.0.cleanup_saw).clone(),
            frames_received,
            elapsed: self.0.started.elapsed(),
        }
    }
}

struct OnExit {
    helper: &'static str,
    socket: Socket,
}

impl Drop for OnExit {
    fn drop(&mut self) {
        // A cancelled task's future is dropped as that task, so `current()`
        // says why it is going away.
        let reason = tethered::current().cancel_reason();
        match &reason {
            Some(reason) => {
                self.socket
                    .log(format!("{} cancelled: {}", self.helper, reason.kind()))
            }
            None => self.socket.log(format!("{} returned", self.helper)),
        }
        lock(&self.socket.0.helpers).push(HelperExit {
            helper: self.helper,
            reason,
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== the connection, as it happened ==")?;
        for Event { at, what } in &self.timeline {
            writeln!(f, "{:>6} ms  {what}", at.as_millis())?;
        }
        writeln!(f)?;
        writeln!(f, "== why the helpers ended ==")?;
        for HelperExit { helper, reason } in &self.helpers {
            match reason {
                Some(reason) => writeln!(f, "{helper:>10}: {reason}")?,
                None => writeln!(f, "{helper:>10}: returned on its own")?,
            }
        }
        writeln!(f)?;
        match &self.cleanup_saw {
            Some(reason) => writeln!(f, "the cleanup ran after its scope was cancelled: {reason}")?,
            None => writeln!(f, "the cleanup ran; its scope was not cancelled")?,
        }
        write!(
            f,
            "{} text frames handled, {} frames sent, {} ms in all",
            self.frames_received,
            self.sent.len(),
            self.elapsed.as_millis()
        )
    }
}
