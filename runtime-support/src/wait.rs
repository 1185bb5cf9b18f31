//! Where a task waits: the `.await` it was last polled at, as the code of
//! `#[scoped]` fns, `#[tethered::main]` and `#[tethered::test]` records it
//! (see [`WaitSite`]).
//!
//! Each `.await` in such a body is a static [`WaitSite`]: its file, line,
//! column and code. Polling it stores the site's number in the node being
//! polled (an atomic store, no lock), and [`crate::tree()`] and the
//! shutdown reports read it back: "waiting at src/db.rs:212:31
//! (`tx.commit().await`)".

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::node;

/// An `.await` in code that tethered's macros expanded: where it is, and
/// what it awaits. [`TreeEntry::waiting_at`](crate::TreeEntry::waiting_at)
/// gives the one a task was last polled at.
pub struct WaitSite {
    file: &'static str,
    line: u32,
    column: u32,
    code: &'static str,
    /// Its number in the registry of sites, plus one; 0 until first polled.
    number: AtomicU32,
}

/// Every site polled so far, by number: a node stores a site's number
/// (four bytes, in the room it has), and readers look the site up here.
static SITES: RwLock<Vec<&'static WaitSite>> = RwLock::new(Vec::new());

impl WaitSite {
    #[doc(hidden)]
    pub const fn new(file: &'static str, line: u32, column: u32, code: &'static str) -> Self {
        WaitSite {
            file,
            line,
            column,
            code,
            number: AtomicU32::new(0),
        }
    }

    /// The file of the `.await`.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// Its line.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// Its column.
    pub fn column(&self) -> u32 {
        self.column
    }

    /// The awaited expression, as written (whitespace tidied, long ones
    /// shortened): `tx.commit().await`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The site's number, registering it the first time.
    fn number(&'static self) -> u32 {
        let number = self.number.load(Ordering::Relaxed);
        if number != 0 {
            return number;
        }
        let mut sites = SITES
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Registered by another thread in the meantime?
        let number = self.number.load(Ordering::Relaxed);
        if number != 0 {
            return number;
        }
        sites.push(self);
        let number = u32::try_from(sites.len()).unwrap_or(0);
        self.number.store(number, Ordering::Relaxed);
        number
    }

    /// The site numbered `number`.
    pub(crate) fn numbered(number: u32) -> Option<&'static WaitSite> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        let sites = SITES
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sites.get(index).copied()
    }
}

impl fmt::Display for WaitSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{} ({})",
            self.file, self.line, self.column, self.code
        )
    }
}

impl fmt::Debug for WaitSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaitSite({self})")
    }
}

pin_project! {
    /// A future awaited at `site`: each poll first records the site in the
    /// node being polled, so that the deepest instrumented `.await` polled
    /// last is the one the node shows.
    #[doc(hidden)]
    pub struct Recorded<F> {
        #[pin]
        future: F,
        site: &'static WaitSite,
    }
}

impl<F> Recorded<F> {
    #[doc(hidden)]
    pub fn new(future: F, site: &'static WaitSite) -> Self {
        Recorded { future, site }
    }
}

impl<F: Future> Future for Recorded<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        node::record_wait(this.site.number());
        this.future.poll(cx)
    }
}
