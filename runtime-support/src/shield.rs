//! Shields: [`Scope::shield`] runs work that hard cancellation does not reach.
//!
//! A shielded task is a child of its scope like any other: the scope (and
//! any shutdown above it) waits for it, and its panics are the scope's
//! failures. What differs is cancellation: when the scope or an ancestor is
//! cancelled, a shield is only asked to *stop* (it can see it with
//! [`crate::is_stopping`]), and it keeps running to its end. Only an explicit
//! `cancel` on its own handle cancels it.

use std::borrow::Cow;
use std::future::Future;

use crate::node::NodeKind;
use crate::scope::Scope;
use crate::task::TaskHandle;

impl Scope {
    /// Runs `fut` as a shielded child: cancelling the scope (or the caller)
    /// does not reach it, and the scope waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use tethered::Scope;
    ///
    /// let saved = Arc::new(AtomicBool::new(false));
    /// let flag = saved.clone();
    /// let result = Scope::run(async |scope| {
    ///     scope.shield(async move {
    ///         tokio::time::sleep(Duration::from_secs(1)).await; // the write
    ///         flag.store(true, Ordering::SeqCst);
    ///     });
    ///     scope.cancel("shutting down");
    /// })
    /// .await;
    /// assert!(result.is_ok());
    /// assert!(saved.load(Ordering::SeqCst), "the shielded write finished");
    /// # }
    /// ```
    #[track_caller]
    pub fn shield<F>(&self, fut: F) -> TaskHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task(NodeKind::Shield, None, fut)
    }

    /// [`shield`](Self::shield) with a name.
    #[track_caller]
    pub fn shield_named<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> TaskHandle<'_, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task(NodeKind::Shield, Some(name.into()), fut)
    }
}
