//! One request: its scope, named by method and path, and how its end is
//! told apart (completed, failed, its client gone, cancelled by the drain).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tethered::{CancelKind, CancelReason, Scope, ScopeHandle};

use crate::BoxError;
use crate::report::{Ending, Log};

/// A response: the handler's body, or one of ours (a 500).
pub(crate) type ResponseBody<B> = Either<B, Full<Bytes>>;

/// The hyper service of one connection: each request in a scope of its
/// own, around the user's tower service.
pub(crate) struct ScopedService<S> {
    pub(crate) service: S,
    pub(crate) log: Arc<Log>,
    pub(crate) peer: SocketAddr,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ScopedService<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<B>>;
    type Error = BoxError;
    type Future = RequestFuture<B>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        handle(self.service.clone(), request, self.log.clone(), self.peer)
    }
}

/// The future of one request. Its fields drop in order: the guard first,
/// so that a request dropped before it answered is cancelled with the
/// reason its guard knows, before its scope is dropped.
pub(crate) struct RequestFuture<B> {
    guard: EndGuard,
    handling: Pin<Box<dyn Future<Output = Handled<B>> + Send>>,
}

/// What a request's handling came to.
enum Handled<B> {
    Response(Response<ResponseBody<B>>),
    Error(BoxError),
}

fn handle<S, B>(
    mut service: S,
    request: Request<Incoming>,
    log: Arc<Log>,
    peer: SocketAddr,
) -> RequestFuture<B>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
{
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let name = format!("{method} {path}");
    let key = log.start(method, path, peer);
    let scope: Arc<OnceLock<ScopeHandle>> = Arc::default();
    let guard = EndGuard {
        log,
        key,
        scope: scope.clone(),
        ended: false,
    };
    let handling = async move {
        let ended = Scope::builder()
            .name(name)
            .run(async |request_scope| {
                let _ = scope.set(request_scope.handle());
                poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                service.call(request).await.map_err(Into::<BoxError>::into)
            })
            .await;
        match ended {
            Ok(Ok(response)) => Handled::Response(response.map(Either::Left)),
            Ok(Err(error)) => Handled::Error(error),
            Err(error) => {
                tracing::warn!(
                    target: "tethered::hyper",
                    %peer,
                    %error,
                    "request failed; answered 500",
                );
                let mut response =
                    Response::new(Either::Right(Full::from("internal server error")));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Handled::Response(response)
            }
        }
    };
    RequestFuture {
        guard,
        handling: Box::pin(handling),
    }
}

impl<B> Future for RequestFuture<B> {
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handled = std::task::ready!(self.handling.as_mut().poll(cx));
        let (ending, result) = match handled {
            Handled::Response(response) if matches!(response.body(), Either::Right(_)) => {
                (Ending::Failed, Ok(response))
            }
            Handled::Response(response) => (Ending::Completed, Ok(response)),
            Handled::Error(error) => (Ending::Failed, Err(error)),
        };
        self.guard.end(ending);
        Poll::Ready(result)
    }
}

/// Records the request's end, and tells why it ends when it is dropped
/// before it answered.
struct EndGuard {
    log: Arc<Log>,
    key: usize,
    /// The request's scope, once it runs.
    scope: Arc<OnceLock<ScopeHandle>>,
    ended: bool,
}

impl EndGuard {
    fn end(&mut self, ending: Ending) {
        self.ended = true;
        self.log.end(self.key, ending);
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Dropped before it answered. Whoever drops it runs as the
        // connection: a connection being cancelled (the drain's grace is
        // over) has cancelled the request already, with its reason; a
        // connection that is not was torn down by hyper, because the client
        // went away (hyper reads an end of stream, or the stream is reset).
        let connection_cancelled = tethered::current().is_cancelled();
        let handle = self.scope.get();
        let ending = match (connection_cancelled, handle) {
            (true, _) => Ending::Cancelled(
                handle
                    .and_then(ScopeHandle::cancel_reason)
                    .or_else(|| tethered::current().cancel_reason())
                    .unwrap_or_else(|| CancelReason::new(CancelKind::Shutdown)),
            ),
            (false, handle) => {
                let reason = CancelReason::new(CancelKind::Disconnected)
                    .with_message("the client went away before the response was sent");
                // The handler's children and cleanups see why.
                if let Some(handle) = handle {
                    handle.cancel(reason.clone());
                }
                Ending::Disconnected(reason)
            }
        };
        self.log.end(self.key, ending);
    }
}
