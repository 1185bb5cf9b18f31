//! Blocking work inside a scope: [`Scope::spawn_blocking`].

use std::borrow::Cow;

use crate::node::NodeKind;
use crate::scope::Scope;
use crate::task::TaskHandle;

impl Scope {
    /// Runs blocking `work` on tokio's blocking thread pool, as a child the
    /// scope waits for.
    ///
    /// Blocking code cannot be interrupted, so the task is shielded:
    /// cancelling the scope does not reach it, and the scope waits for `work`
    /// to return. (If it must end early, give it a flag of your own to check.)
    /// A panic in `work` is a failure of the scope, as for any child.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// let digest = Scope::run(async |scope| {
    ///     let hashing = scope.spawn_blocking(|| (1..=1000u64).sum::<u64>());
    ///     hashing.join().await.unwrap()
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(digest, 500_500);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_blocking<W, R>(&self, work: W) -> TaskHandle<'_, R>
    where
        W: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_task(NodeKind::Shield, None, run_blocking(work))
    }

    /// [`spawn_blocking`](Self::spawn_blocking) with a name.
    #[track_caller]
    pub fn spawn_blocking_named<W, R>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: W,
    ) -> TaskHandle<'_, R>
    where
        W: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_task(NodeKind::Shield, Some(name.into()), run_blocking(work))
    }
}

async fn run_blocking<W, R>(work: W) -> R
where
    W: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        // Re-raised inside the task, where it is caught and reported as the
        // task's panic, with its original payload.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // The runtime is shutting down and dropped the work unstarted; this
        // task is being dropped too.
        Err(_) => std::future::pending().await,
    }
}
