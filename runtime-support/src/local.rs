//! Local children: futures a scope polls in its own task, interleaved with
//! its body, rather than spawned on the runtime. [`LocalScope`] (also at
//! the crate's root) is where they are started.
//!
//! A spawned child is a tokio task: it runs in parallel, so it must be
//! `Send + 'static` (a scope's future can be leaked with `mem::forget`, and
//! a task that borrowed from it would then read freed memory). A local
//! child gives up the parallelism instead: it lives inside the scope's
//! future, and is polled only when that future is. It may then borrow
//! anything that outlives the scope (the caller's `&self`, a `&[Doc]`),
//! since a leaked scope leaks its children with it, never to be polled
//! again; and in a [`NonSend`] scope it may hold `!Send` values (`Rc`,
//! `RefCell` borrows).
//!
//! # Polling order
//!
//! Each time the scope's future is polled: its timeout, then the body, then
//! one round of the local children: every one woken or started since the
//! last round, in the order they were woken or started, each polled once.
//! A child woken during the round (by itself or by a sibling) waits for the
//! next one, which comes after the scope's task has yielded to the runtime:
//! one busy child cannot starve its siblings, the body, or the other tasks
//! of the thread. After the body has returned, the scope goes on polling
//! its local children while it waits for all of its children.
//!
//! A local child's waker is its node in the task tree (see
//! `node/local.rs`): waking it queues the child, by its key, for its
//! scope's next round.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::TaskError;
use crate::node::{Guarded, Node};
use crate::outcome::Outcome;
use crate::scope::{Holder, PollLocal, Scope, never_failed};
use crate::task::{Split, TaskHandle, classify};

/// A [`Scope`] that can hold local children (see
/// [`spawn_local`](Self::spawn_local)): what the body of
/// [`Scope::run_local`] and [`Scope::run_local_non_send`] is given. It
/// dereferences to its [`Scope`], so the body spawns, defers and cancels as
/// in any scope, and the local children and the spawned ones are joined
/// alike.
///
/// `'env` is what the local children may borrow: anything that outlives the
/// scope. `M` says whether they must be `Send` ([`Sendable`], the default:
/// the scope's future is `Send`, and runs anywhere) or not ([`NonSend`]:
/// the scope's future is `!Send`, for a current-thread runtime, a
/// `LocalSet` or a `LocalRuntime`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tethered::Scope;
///
/// struct Doc {
///     words: String,
/// }
///
/// let docs = vec![
///     Doc { words: "a b c".into() },
///     Doc { words: "d e".into() },
/// ];
/// // One child per document, each reading its document in place: no
/// // `Arc`, no clone.
/// let counts = Scope::run_local(|scope| Box::pin(async {
///     let handles: Vec<_> = docs
///         .iter()
///         .map(|doc| scope.spawn_local(async move { doc.words.split(' ').count() }))
///         .collect();
///     let mut counts = Vec::new();
///     for handle in handles {
///         counts.push(handle.join().await.unwrap());
///     }
///     counts
/// }))
/// .await
/// .unwrap();
/// assert_eq!(counts, [3, 2]);
/// # }
/// ```
///
/// A local child cannot borrow what the body declares: the body's locals
/// are gone before the scope has joined its children.
///
/// ```compile_fail
/// # async fn f() {
/// tethered::Scope::run_local(|scope| Box::pin(async {
///     let inside = String::from("the body's");
///     scope.spawn_local(async { inside.len() });
/// }))
/// .await;
/// # }
/// ```
pub struct LocalScope<'env, M: LocalMode = Sendable> {
    // Declared first, so dropped first: a scope whose future is dropped
    // mid-flight cancels its children, and only then are the local ones
    // dropped, their `Drop` code seeing why.
    scope: Scope,
    children: M::Children<'env>,
}

/// Whether a [`LocalScope`]'s children must be `Send`.
///
/// Sealed: [`Sendable`] and [`NonSend`] are the two.
pub trait LocalMode: sealed::Sealed + Sized + 'static {
    /// Where the children are kept.
    #[doc(hidden)]
    type Children<'env>: Default + PollChildren;
}

/// Local children that are `Send`: the scope's future is `Send` too, and
/// can run on any runtime, in a `tokio::spawn`ed task or an axum handler.
#[derive(Debug)]
pub enum Sendable {}

/// Local children that may be `!Send`: the scope's future is `!Send`, and
/// runs on a current-thread runtime, a `LocalSet` or a `LocalRuntime`.
#[derive(Debug)]
pub enum NonSend {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Sendable {}
    impl Sealed for super::NonSend {}
}

impl LocalMode for Sendable {
    type Children<'env> = SendChildren<'env>;
}

impl LocalMode for NonSend {
    type Children<'env> = NonSendChildren<'env>;
}

/// Polls the children that are due. Not part of the API.
#[doc(hidden)]
pub trait PollChildren {
    /// Polls, once each, the children of `scope` that were woken, or are
    /// new.
    fn poll_children(&self, scope: &Scope, cx: &mut Context<'_>);
}

/// Takes a child in. Not part of the API: what it says is which futures a
/// [`LocalMode`] accepts.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a local child of a `Send` scope must be `Send`",
    label = "this local child is not `Send`",
    note = "run the scope with `Scope::run_local_non_send` (its future is then `!Send`: run it \
            on a current-thread runtime, a `LocalSet` or a `LocalRuntime`)"
)]
pub trait Holds<'env, C>: LocalMode {
    /// Adds `child`, to be polled at the scope's next poll.
    fn push(children: &Self::Children<'env>, key: usize, child: C);
}

/// What the body of a [`Sendable`] local scope returns: its future, boxed
/// (see [`Scope::run_local`] for why).
pub type SendBody<'s, T> = Pin<Box<dyn Future<Output = T> + Send + 's>>;

/// A local child as its scope polls it, whatever its future's type. Not
/// part of the API.
#[doc(hidden)]
pub trait Polled {
    /// Polls the child with its own waker; `Ready` once it has ended.
    fn poll_child(self: Pin<&mut Self>) -> Poll<()>;
}

/// A scope's local children, by key: their nodes' keys in the scope node's
/// registry. In chunks, so that growing moves no child and frees no memory
/// for the allocator to merge back; a key's chunk is `key / CHUNK`.
struct Children<C: ?Sized> {
    chunks: Vec<Box<Chunk<C>>>,
    /// The keys of the round being polled (kept to reuse its memory).
    round: Vec<u32>,
}

/// How many local children a chunk holds.
const CHUNK: usize = 64;

/// A chunk of a scope's local children: a slot per key.
type Chunk<C> = [Option<Pin<Box<C>>>; CHUNK];

impl<C: ?Sized> Default for Children<C> {
    fn default() -> Self {
        Children {
            chunks: Vec::new(),
            round: Vec::new(),
        }
    }
}

impl<C: Polled + ?Sized> Children<C> {
    /// Adds `child` under `key`, its node's: the node queued it already
    /// (see `Node::new_local`).
    fn insert(&mut self, key: usize, child: Pin<Box<C>>) {
        while self.chunks.len() <= key / CHUNK {
            self.chunks.push(Box::new([const { None }; CHUNK]));
        }
        let slot = &mut self.chunks[key / CHUNK][key % CHUNK];
        // A key is a registered node's, and a child leaves its slot before
        // its node leaves the registry: the slot is free.
        debug_assert!(slot.is_none(), "two local children under key {key}");
        *slot = Some(child);
    }

    fn slot(&mut self, key: usize) -> Option<&mut Option<Pin<Box<C>>>> {
        Some(&mut self.chunks.get_mut(key / CHUNK)?[key % CHUNK])
    }

    /// One round: the children woken or started since the last one, in
    /// the order they were, each polled once; those that end are dropped
    /// (their nodes end then).
    fn poll_round(&mut self, scope: &Node, cx: &mut Context<'_>) {
        if self.chunks.is_empty() {
            // No local child yet: nothing to take from the scope's node.
            return;
        }
        let mut round = std::mem::take(&mut self.round);
        scope.take_woken_local(cx.waker(), &mut round);
        for &key in &round {
            // A slot is empty when its child was woken after it ended.
            let Some(slot) = self.slot(key as usize) else {
                continue;
            };
            if let Some(child) = slot
                && child.as_mut().poll_child().is_ready()
            {
                *slot = None;
            }
        }
        round.clear();
        self.round = round;
    }
}

type SendSet<'env> = Children<dyn Polled + Send + 'env>;
type NonSendSet<'env> = Children<dyn Polled + 'env>;

/// A [`Sendable`] scope's children. Not part of the API.
///
/// Behind a `Mutex` so that the scope, shared by reference with its body,
/// is `Sync` (and the body's future `Send`). Never contended: only the
/// scope's own task touches it.
#[doc(hidden)]
#[derive(Default)]
pub struct SendChildren<'env>(Mutex<SendSet<'env>>);

impl fmt::Debug for SendChildren<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendChildren").finish_non_exhaustive()
    }
}

/// A [`NonSend`] scope's children. Not part of the API.
#[doc(hidden)]
#[derive(Default)]
pub struct NonSendChildren<'env>(RefCell<NonSendSet<'env>>);

impl fmt::Debug for NonSendChildren<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonSendChildren").finish_non_exhaustive()
    }
}

impl<'env, C> Holds<'env, C> for Sendable
where
    C: Polled + Send + 'env,
{
    fn push(children: &SendChildren<'env>, key: usize, child: C) {
        lock(&children.0).insert(key, Box::pin(child));
    }
}

impl<'env, C> Holds<'env, C> for NonSend
where
    C: Polled + 'env,
{
    fn push(children: &NonSendChildren<'env>, key: usize, child: C) {
        children.0.borrow_mut().insert(key, Box::pin(child));
    }
}

impl PollChildren for SendChildren<'_> {
    fn poll_children(&self, scope: &Scope, cx: &mut Context<'_>) {
        lock(&self.0).poll_round(scope.node(), cx);
    }
}

impl PollChildren for NonSendChildren<'_> {
    fn poll_children(&self, scope: &Scope, cx: &mut Context<'_>) {
        // Never borrowed already: children cannot reach their scope (they
        // outlive no borrow of it), so none spawns while the set is polled.
        self.0.borrow_mut().poll_round(scope.node(), cx);
    }
}

fn lock<'a, T>(mutex: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<'env, M: LocalMode> Holder for LocalScope<'env, M> {
    type Local = M::Children<'env>;

    fn hold(scope: Scope) -> Self {
        LocalScope {
            scope,
            children: M::Children::default(),
        }
    }

    fn parts(&self) -> (&Scope, &Self::Local) {
        (&self.scope, &self.children)
    }

    fn parts_mut(&mut self) -> (&mut Scope, &Self::Local) {
        (&mut self.scope, &self.children)
    }
}

impl<C: PollChildren> PollLocal for C {
    fn poll_local(&self, scope: &Scope, cx: &mut Context<'_>) {
        self.poll_children(scope, cx);
    }
}

impl<M: LocalMode> Deref for LocalScope<'_, M> {
    type Target = Scope;

    fn deref(&self) -> &Scope {
        &self.scope
    }
}

impl<M: LocalMode> fmt::Debug for LocalScope<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalScope")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The child future of [`LocalScope::spawn_local`] and its siblings, as
/// the scope keeps it. Not part of the API.
#[doc(hidden)]
pub type LocalChildOf<F> = LocalChild<
    F,
    InfallibleSplit<<F as Future>::Output>,
    <F as Future>::Output,
    std::convert::Infallible,
>;

/// How a local child that fails only by panicking splits its output. Not
/// part of the API.
#[doc(hidden)]
pub type InfallibleSplit<O> = fn(O) -> Result<O, std::convert::Infallible>;

/// The fallible child future of [`LocalScope::spawn_local_fallible`]. Not
/// part of the API.
#[doc(hidden)]
pub type FallibleChildOf<F, T, E> = LocalChild<F, FallibleSplit<T, E>, T, E>;

/// How a fallible local child splits its output: as it is. Not part of the
/// API.
#[doc(hidden)]
pub type FallibleSplit<T, E> = fn(Result<T, E>) -> Result<T, E>;

impl<'env, M: LocalMode> LocalScope<'env, M> {
    /// Starts `fut` as a local child: polled by this scope's own task,
    /// interleaved with the body and the other local children, and joined
    /// with the spawned ones. It may borrow anything that outlives the
    /// scope; in a [`NonSend`] scope it may be `!Send`.
    ///
    /// Everything else is as for a spawned child: a node in the task tree
    /// with the caller's line, a [`TaskHandle`] to join, cancel or stop it,
    /// a cancellation that drops it at its next `.await` (its `Drop` code
    /// seeing the reason), and a panic that fails the scope and cancels
    /// its siblings, local or spawned. Starting one in a cancelled scope
    /// yields a child that is cancelled at once and never polled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use tethered::Scope;
    ///
    /// // `Rc` and `RefCell`: a non-`Send` scope, on this current-thread runtime.
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// Scope::run_local_non_send(async |scope| {
    ///     for n in 0..3 {
    ///         let seen = seen.clone();
    ///         scope.spawn_local(async move {
    ///             tokio::task::yield_now().await;
    ///             seen.borrow_mut().push(n);
    ///         });
    ///     }
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(seen.borrow().len(), 3);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, fut: F) -> TaskHandle<'_, F::Output>
    where
        F: Future + 'env,
        M: Holds<'env, LocalChildOf<F>>,
    {
        self.start(None, fut, infallible_split())
    }

    /// [`spawn_local`](Self::spawn_local) with a name (shown in reasons,
    /// failures and [`crate::tree()`]).
    #[track_caller]
    pub fn spawn_local_named<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> TaskHandle<'_, F::Output>
    where
        F: Future + 'env,
        M: Holds<'env, LocalChildOf<F>>,
    {
        self.start(Some(name.into()), fut, infallible_split())
    }

    /// A local child whose `Err` fails the scope, as
    /// [`Scope::spawn_fallible`]'s does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tethered::Scope;
    ///
    /// let limit = 2;
    /// let error = Scope::run_local(|scope| Box::pin(async {
    ///     scope.spawn_local_fallible_named("check", async {
    ///         if limit < 3 { Err("limit too low") } else { Ok(()) }
    ///     });
    /// }))
    /// .await
    /// .unwrap_err();
    /// assert_eq!(error.failures()[0].task(), Some("check"));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_local_fallible<F, T, E>(&self, fut: F) -> TaskHandle<'_, T, E>
    where
        F: Future<Output = Result<T, E>> + 'env,
        E: fmt::Display + fmt::Debug + Send + Sync + 'static,
        M: Holds<'env, FallibleChildOf<F, T, E>>,
    {
        self.start(None, fut, fallible_split())
    }

    /// [`spawn_local_fallible`](Self::spawn_local_fallible) with a name.
    #[track_caller]
    pub fn spawn_local_fallible_named<F, T, E>(
        &self,
        name: impl Into<Cow<'static, str>>,
        fut: F,
    ) -> TaskHandle<'_, T, E>
    where
        F: Future<Output = Result<T, E>> + 'env,
        E: fmt::Display + fmt::Debug + Send + Sync + 'static,
        M: Holds<'env, FallibleChildOf<F, T, E>>,
    {
        self.start(Some(name.into()), fut, fallible_split())
    }

    /// Starts a local child whose output `split` tells apart.
    #[track_caller]
    pub(crate) fn start<F, S, T, E>(
        &self,
        name: Option<Cow<'static, str>>,
        fut: F,
        split: Split<S, E>,
    ) -> TaskHandle<'_, T, E>
    where
        F: Future,
        S: FnOnce(F::Output) -> Result<T, E>,
        M: Holds<'env, LocalChild<F, S, T, E>>,
    {
        let node = Node::new_local(name, Location::caller(), Instant::now(), self.scope.node());
        let (ended, outcome) = oneshot::channel();
        M::push(
            &self.children,
            node.local_key(),
            LocalChild {
                split: Some(split),
                draining: None,
                ended: Some(ended),
                waker: Node::local_waker(&node),
                // Finishes the node when dropped, as a task's node ends
                // with it.
                guarded: Guarded::new(node.clone(), fut),
            },
        );
        TaskHandle::local(node, outcome)
    }
}

pub(crate) fn infallible_split<O>() -> Split<InfallibleSplit<O>, std::convert::Infallible> {
    Split::new(Ok, never_failed)
}

fn fallible_split<T, E>() -> Split<FallibleSplit<T, E>, E>
where
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    fallible_split_with(TaskError::new::<E>)
}

/// A fallible local child's split, its error shown through `erase`.
pub(crate) fn fallible_split_with<T, E>(
    erase: fn(std::sync::Arc<E>) -> TaskError,
) -> Split<FallibleSplit<T, E>, E> {
    Split::new(|result| result, erase)
}

pin_project! {
    /// A local child, as its scope keeps it: runs the user's future as its
    /// node, turns how it ended into an [`Outcome`] (reporting a failure to
    /// the scope), waits for scopes nested in it that were dropped
    /// mid-flight, then sends the outcome to its handle. Not part of the
    /// API.
    #[doc(hidden)]
    pub struct LocalChild<F: Future, S, T, E> {
        split: Option<Split<S, E>>,
        draining: Option<Box<Outcome<T, E>>>,
        ended: Option<oneshot::Sender<Outcome<T, E>>>,
        // Its node's waker (see `node/local.rs`).
        waker: Waker,
        // Last, so dropped last: the child's node finishes once everything
        // else it held is gone.
        #[pin]
        guarded: Guarded<F>,
    }
}

impl<F, S, T, E> Polled for LocalChild<F, S, T, E>
where
    F: Future,
    S: FnOnce(F::Output) -> Result<T, E>,
{
    fn poll_child(self: Pin<&mut Self>) -> Poll<()> {
        let mut this = self.project();
        let cx = &mut Context::from_waker(this.waker);
        // Through the pin: a `&Guarded` would cover the future, which may
        // hold references into itself (see `Guarded::node_pinned`).
        this.guarded.as_mut().node_pinned().unqueue();
        let outcome = match this.draining.take() {
            Some(outcome) => *outcome,
            None => {
                let Poll::Ready(settled) = this.guarded.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                let node = this.guarded.node();
                node.set_settled();
                classify(node, settled, this.split.take())
            }
        };
        let node = this.guarded.node();
        if node.had_children() && !node.poll_children_done(cx.waker()) {
            *this.draining = Some(Box::new(outcome));
            return Poll::Pending;
        }
        if let Some(ended) = this.ended.take() {
            // Nobody listening: the handle was dropped.
            let _ = ended.send(outcome);
        }
        Poll::Ready(())
    }
}
