//! [`Listener`]: where a [`Server`](crate::Server) takes its connections
//! from.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A source of connections for a [`Server`](crate::Server): a
/// [`TcpListener`], or one of your own (a TLS acceptor around one, an
/// in-memory listener in tests).
///
/// An error from [`accept`](Self::accept) never ends the server: one that
/// concerns a single connection (reset, aborted, refused) is retried at
/// once, any other (out of file descriptors, of memory) after a pause that
/// doubles from 10 ms to a second, so that the server neither spins nor
/// stops serving the connections it has.
///
/// The listener is dropped as soon as the server drains, so that new
/// connections are refused while the requests in flight finish.
///
/// ```
/// use std::io;
/// use std::net::SocketAddr;
/// use tethered_hyper::Listener;
/// use tokio::io::DuplexStream;
/// use tokio::sync::mpsc;
///
/// /// Connections handed over through a channel, with made-up peers.
/// struct InMemory(mpsc::Receiver<(DuplexStream, SocketAddr)>);
///
/// impl Listener for InMemory {
///     type Io = DuplexStream;
///
///     async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
///         match self.0.recv().await {
///             Some(connection) => Ok(connection),
///             // Nobody can connect any more: wait for the stop.
///             None => std::future::pending().await,
///         }
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection, and its peer's address (which names
    /// the connection in the tree and the reports).
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

/// Accepted connections have Nagle's algorithm turned off (`TCP_NODELAY`):
/// a small response is sent when it is written, rather than after the
/// client's delayed acknowledgement.
impl Listener for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(target: "tethered::hyper", %peer, %error, "TCP_NODELAY not set");
        }
        Ok((stream, peer))
    }
}
