//! One request: its scope, named by method and path, and how its end is
//! told apart (completed, failed, its client gone, cancelled by the drain).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use hyper::body::Incoming;
use tethered::{CancelKind, CancelReason, Scope, ScopeError, ScopeHandle};

use crate::BoxError;
use crate::body::TrackedBody;
use crate::report::{ConnectionLog, Ending};

/// The hyper service of one connection: each request in a scope of its
/// own, around the user's tower service.
pub(crate) struct ScopedService<S> {
    pub(crate) service: S,
    pub(crate) log: Arc<ConnectionLog>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ScopedService<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = BoxError;
    type Future = RequestFuture<B>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        handle(self.service.clone(), request, self.log.clone())
    }
}

/// The future of one request, until its handler answers. Its fields drop
/// in order: the guard first, so that a request dropped before it answered
/// is cancelled with the reason its guard knows before its scope is
/// dropped.
pub(crate) struct RequestFuture<B> {
    /// `None` once the response (and with it the guard) is handed over.
    guard: Option<EndGuard>,
    /// The request's scope: the handler's response or the service's error;
    /// or the scope's failure (the handler panicked, or one of its tasks
    /// failed).
    handling: Pin<Box<dyn Future<Output = Handled<B>> + Send>>,
}

type Handled<B> = Result<Result<Response<B>, BoxError>, ScopeError>;

fn handle<S, B>(
    mut service: S,
    request: Request<Incoming>,
    log: Arc<ConnectionLog>,
) -> RequestFuture<B>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
{
    let method = request.method();
    let name = format!("{method} {}", request.uri().path());
    let head = method == Method::HEAD;
    let key = log.start(method.clone(), request.uri().clone());
    let scope: Arc<OnceLock<ScopeHandle>> = Arc::default();
    let guard = EndGuard {
        log,
        key,
        scope: scope.clone(),
        head,
        ended: false,
    };
    // Boxed as it is: an `async` block around it would keep the request
    // and the service twice.
    let handling = Scope::builder().name(name).run(async move |request_scope| {
        let _ = scope.set(request_scope.handle());
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        service.call(request).await.map_err(Into::<BoxError>::into)
    });
    RequestFuture {
        guard: Some(guard),
        handling: Box::pin(handling),
    }
}

impl<B> Future for RequestFuture<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<TrackedBody<B>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handled = std::task::ready!(self.handling.as_mut().poll(cx));
        let Some(mut guard) = self.guard.take() else {
            return Poll::Pending; // polled after it answered
        };
        Poll::Ready(match handled {
            // The request goes on until its body is sent.
            Ok(Ok(response)) => {
                let bodiless = guard.sends_no_body(response.status());
                Ok(response.map(|body| TrackedBody::new(body, guard, bodiless)))
            }
            Err(error) => {
                tracing::warn!(
                    target: "tethered::hyper",
                    peer = %guard.log.peer(),
                    %error,
                    "request failed; answered 500",
                );
                guard.end(Ending::Failed);
                let body = Full::from("internal server error");
                let mut response = Response::new(TrackedBody::untracked(body));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Ok(response)
            }
            Ok(Err(error)) => {
                guard.end(Ending::Failed);
                Err(error)
            }
        })
    }
}

/// Records the request's end, and tells why it ended when it is dropped
/// before it was sent.
pub(crate) struct EndGuard {
    log: Arc<ConnectionLog>,
    key: usize,
    /// The request's scope, once it runs.
    scope: Arc<OnceLock<ScopeHandle>>,
    /// A `HEAD` request, whose response hyper sends without its body.
    head: bool,
    ended: bool,
}

impl EndGuard {
    pub(crate) fn end(&mut self, ending: Ending) {
        if !std::mem::replace(&mut self.ended, true) {
            self.log.end(self.key, ending);
        }
    }

    /// Whether hyper sends a response of `status` to this request without
    /// a body (and drops the body unread).
    fn sends_no_body(&self, status: StatusCode) -> bool {
        self.head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Dropped before it was sent. Whoever drops it runs as the
        // connection (or, for HTTP/2, its stream): one being cancelled (the
        // drain's grace is over) has cancelled the request already, with
        // its reason; one that is not was ended by hyper, because the
        // client went away (hyper read the end of the stream, or the stream
        // was reset).
        let current = tethered::current();
        let handle = self.scope.get();
        let ending = if current.is_cancelled() {
            Ending::Cancelled(
                handle
                    .and_then(ScopeHandle::cancel_reason)
                    .or_else(|| current.cancel_reason())
                    .unwrap_or_else(|| CancelReason::new(CancelKind::Shutdown)),
            )
        } else {
            let reason = CancelReason::new(CancelKind::Disconnected)
                .with_message("the client went away before the response was sent");
            // The handler's children and cleanups see why.
            if let Some(handle) = handle {
                handle.cancel(reason.clone());
            }
            Ending::Disconnected(reason)
        };
        self.end(ending);
    }
}
