//! [`CatchUnwind`]: a future whose panic becomes a value.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::PanicPayload;

pin_project! {
    /// Polls a future, turning a panic into `Err(payload)`: for work whose
    /// failure is counted by its owner (a periodic schedule, a supervisor)
    /// instead of failing, and cancelling, the scope it runs in.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        future: AssertUnwindSafe<F>,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        CatchUnwind {
            future: AssertUnwindSafe(future),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicPayload>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(PanicPayload::new(payload))),
        }
    }
}
