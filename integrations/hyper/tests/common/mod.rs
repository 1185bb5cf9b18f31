//! An in-memory listener and HTTP clients for the tests: connections are
//! `tokio::io::duplex` pipes, so the tests run under paused time without
//! depending on how fast the kernel moves bytes.

#![allow(dead_code)] // each test file uses a part

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tethered_hyper::Listener;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Connections handed over through a channel, each from a made-up peer
/// `127.0.0.1:40001`, `127.0.0.1:40002`, …
pub(crate) struct InMemory(mpsc::UnboundedReceiver<(DuplexStream, SocketAddr)>);

impl Listener for InMemory {
    type Io = DuplexStream;

    async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
        match self.0.recv().await {
            Some(connection) => Ok(connection),
            None => std::future::pending().await,
        }
    }
}

/// The client side of an [`InMemory`] listener.
#[derive(Clone)]
pub(crate) struct Connector {
    sender: mpsc::UnboundedSender<(DuplexStream, SocketAddr)>,
    next_port: Arc<AtomicU16>,
}

pub(crate) fn in_memory() -> (InMemory, Connector) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let connector = Connector {
        sender,
        next_port: Arc::new(AtomicU16::new(40001)),
    };
    (InMemory(receiver), connector)
}

impl Connector {
    /// A new connection and its peer address, or `None` once the server
    /// has closed its listener.
    pub(crate) fn connect(&self) -> Option<(DuplexStream, SocketAddr)> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let port = self.next_port.fetch_add(1, Ordering::Relaxed);
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        self.sender.send((server, peer)).ok()?;
        Some((client, peer))
    }

    /// An HTTP/1.1 client on a new connection.
    pub(crate) async fn http1(&self) -> Http1 {
        let (io, peer) = self.connect().expect("the server accepts connections");
        let (sender, connection) = http1::handshake(TokioIo::new(io)).await.unwrap();
        Http1 {
            sender,
            connection: tokio::spawn(connection),
            peer,
        }
    }

    /// An HTTP/2 client on a new connection.
    pub(crate) async fn http2(&self) -> Http2 {
        let (io, peer) = self.connect().expect("the server accepts connections");
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
        Http2 {
            sender,
            connection: tokio::spawn(connection),
            peer,
        }
    }
}

/// An HTTP/1.1 client connection.
pub(crate) struct Http1 {
    pub(crate) sender: http1::SendRequest<Empty<Bytes>>,
    pub(crate) connection: JoinHandle<hyper::Result<()>>,
    pub(crate) peer: SocketAddr,
}

impl Http1 {
    /// Sends `GET path` and reads the whole response.
    pub(crate) async fn get(&mut self, path: &str) -> hyper::Result<(StatusCode, String)> {
        self.sender.ready().await?;
        let response = self.sender.send_request(get(path)).await?;
        read(response).await
    }

    /// Goes away: the connection is dropped, as when a client's process dies.
    pub(crate) fn disconnect(self) {
        self.connection.abort();
    }
}

/// An HTTP/2 client connection.
pub(crate) struct Http2 {
    pub(crate) sender: http2::SendRequest<Empty<Bytes>>,
    pub(crate) connection: JoinHandle<hyper::Result<()>>,
    pub(crate) peer: SocketAddr,
}

impl Http2 {
    /// Sends `GET path` and reads the whole response.
    pub(crate) async fn get(&self, path: &str) -> hyper::Result<(StatusCode, String)> {
        let mut sender = self.sender.clone();
        sender.ready().await?;
        let response = sender.send_request(get(path)).await?;
        read(response).await
    }
}

pub(crate) fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "test")
        .body(Empty::new())
        .unwrap()
}

pub(crate) async fn read(response: Response<Incoming>) -> hyper::Result<(StatusCode, String)> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
