//! [`TrackedBody`]: a response body that ends its request when it has been
//! sent, so that a streamed response (server-sent events, a gRPC stream, a
//! download) counts as in flight, and is drained and reported, until it is
//! done.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use crate::BoxError;
use crate::report::Ending;
use crate::request::EndGuard;

pin_project! {
    /// The body of a response the server sends: the handler's, or one of
    /// its own (a 500), with the request's end to record once it is sent.
    pub(crate) struct TrackedBody<B>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        #[pin]
        inner: Either<B, Full<Bytes>>,
        // `None` for a body of the server's own, or once it has ended.
        guard: Option<EndGuard>,
        // The response is one hyper sends without a body (to a `HEAD`
        // request, a 1xx, 204 or 304): the body is dropped unread.
        bodiless: bool,
    }

    impl<B> PinnedDrop for TrackedBody<B>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut guard) = this.guard.take()
                && (*this.bodiless || this.inner.is_end_stream())
            {
                guard.end(Ending::Completed);
            }
            // Otherwise the guard, dropped, tells why it was cut short.
        }
    }
}

impl<B> TrackedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// The handler's body, whose end is the end of its request.
    pub(crate) fn new(inner: B, guard: EndGuard, bodiless: bool) -> Self {
        TrackedBody {
            inner: Either::Left(inner),
            guard: Some(guard),
            bodiless,
        }
    }

    /// A body of the server's own, for a request already ended.
    pub(crate) fn untracked(body: Full<Bytes>) -> Self {
        TrackedBody {
            inner: Either::Right(body),
            guard: None,
            bodiless: false,
        }
    }
}

impl<B> Body for TrackedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        let ending = match &frame {
            None => Some(Ending::Completed),
            Some(Err(_)) => Some(Ending::Failed),
            // hyper may not poll a body again once it says it has ended.
            Some(Ok(_)) if this.inner.is_end_stream() => Some(Ending::Completed),
            Some(Ok(_)) => None,
        };
        if let Some(ending) = ending
            && let Some(mut guard) = this.guard.take()
        {
            guard.end(ending);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
