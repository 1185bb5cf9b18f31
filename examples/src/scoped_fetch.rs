//! Fan-out with `#[scoped]`: a dashboard fetched from several services at
//! once, where the first failure cancels everything else.
//!
//! ```text
//! scope `dashboard`                  #[scoped] fn, body joins the four
//! ├── task `profile`                 answers after 100 ms
//! ├── task `orders`                  fails after 200 ms (HTTP 503)
//! ├── task `recommendations`
//! │   └── scope `recs`               #[scoped] fn, nested
//! │       ├── task `recs/similar`    would answer after 700 ms
//! │       └── task `recs/trending`   would answer after 900 ms
//! └── task `inventory`               would answer after 1200 ms
//! ```
//!
//! `orders` fails at 200 ms. That cancels `dashboard`: `recommendations` and
//! `inventory` are cancelled with a reason naming `orders`, the nested scope
//! `recs` passes it on to its own children one level at a time, and the
//! body, which was waiting on `profile`'s sibling, is interrupted. Every task
//! writes down, as it ends, how it ended and, if it was cancelled, why
//! (`tethered::current().cancel_reason()` in a `Drop` guard); [`run`]
//! returns it all in a [`Report`], with the error `dashboard` returned.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethered::{CancelReason, ScopeError, scoped};
use tokio::time::{Instant, sleep};

/// What a fetch fails with, and what `dashboard` returns on failure.
#[derive(Debug)]
pub enum FetchError {
    /// The service answered with an error status.
    Status {
        /// The service.
        service: &'static str,
        /// The HTTP status it answered with.
        status: u16,
    },
    /// A child of the scope failed (a fetch, or a nested scope).
    Scope(ScopeError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Status { service, status } => {
                write!(f, "{service} answered HTTP {status}")
            }
            FetchError::Scope(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::Status { .. } => None,
            FetchError::Scope(error) => Some(error),
        }
    }
}

/// How the failures of a `#[scoped]` fn returning `Result<_, FetchError>`
/// reach its caller.
impl From<ScopeError> for FetchError {
    fn from(error: ScopeError) -> Self {
        FetchError::Scope(error)
    }
}

/// One fetched page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The service it came from.
    pub service: &'static str,
    /// Its size.
    pub bytes: usize,
}

/// What `dashboard` returns when every fetch succeeded.
#[derive(Debug)]
pub struct Dashboard {
    /// Every page, in the order they were asked for.
    pub pages: Vec<Page>,
}

/// How one task (or the body of `dashboard`) ended, and when.
#[derive(Debug, Clone)]
pub enum Ended {
    /// It returned its value.
    Completed,
    /// It returned this error.
    Failed(String),
    /// It was cancelled, for this reason.
    Cancelled(CancelReason),
}

/// One task of the fan-out and how it ended.
#[derive(Debug, Clone)]
pub struct Fate {
    /// The task's name (or `dashboard (body)`).
    pub task: &'static str,
    /// How it ended.
    pub ended: Ended,
    /// When, counted from the start of the fan-out.
    pub after: Duration,
}

/// Everything the example observed.
#[derive(Debug)]
pub struct Report {
    /// Every task, in tree order, then the body of `dashboard`.
    pub fates: Vec<Fate>,
    /// What `dashboard` returned.
    pub result: Result<Dashboard, FetchError>,
    /// How long the whole fan-out took.
    pub elapsed: Duration,
}

/// The name under which the body of `dashboard` appears in the report.
pub const BODY: &str = "dashboard (body)";

/// The tasks in tree order, for the report.
const ORDER: [&str; 7] = [
    "profile",
    "orders",
    "recommendations",
    "recs/similar",
    "recs/trending",
    "inventory",
    BODY,
];

/// Runs the fan-out and reports who ended how.
pub async fn run() -> Report {
    let notebook = Notebook {
        started: Instant::now(),
        fates: Arc::default(),
    };
    let result = dashboard(notebook.clone()).await;
    let elapsed = notebook.started.elapsed();
    let mut fates = lock(&notebook.fates).clone();
    fates.sort_by_key(|fate| ORDER.iter().position(|task| *task == fate.task));
    Report {
        fates,
        result,
        elapsed,
    }
}

/// Fetches the four parts of the dashboard at once. `orders` fails, so this
/// returns `Err(FetchError::Scope(..))` after 200 ms.
#[scoped(name = "dashboard", timeout = "2s")]
async fn dashboard(notebook: Notebook) -> Result<Dashboard, FetchError> {
    // Dropped when the body ends: normally, or interrupted by the failure.
    let _body = notebook.witness(BODY);
    let profile = spawn!("profile", fetch(notebook.clone(), "profile", 100, 200));
    let orders = spawn!("orders", fetch(notebook.clone(), "orders", 200, 503));
    let book = notebook.clone();
    let recommendations = spawn!("recommendations", async move {
        let witness = book.witness("recommendations");
        let pages = recommendations(book).await;
        witness.record(match &pages {
            Ok(_) => Ended::Completed,
            Err(error) => Ended::Failed(error.to_string()),
        });
        pages
    });
    let inventory = spawn!("inventory", fetch(notebook.clone(), "inventory", 1200, 200));

    // A failure interrupts the body here: no `join` below sees it.
    let mut pages = vec![profile.join().await.unwrap(), orders.join().await.unwrap()];
    pages.extend(recommendations.join().await.unwrap());
    pages.push(inventory.join().await.unwrap());
    Ok(Dashboard { pages })
}

/// A scope of its own, nested in the `recommendations` task.
#[scoped(name = "recs")]
async fn recommendations(notebook: Notebook) -> Result<Vec<Page>, FetchError> {
    let similar = spawn!(
        "recs/similar",
        fetch(notebook.clone(), "recs/similar", 700, 200)
    );
    let trending = spawn!("recs/trending", fetch(notebook, "recs/trending", 900, 200));
    Ok(vec![
        similar.join().await.unwrap(),
        trending.join().await.unwrap(),
    ])
}

/// One simulated request: answers `status` after `millis`.
async fn fetch(
    notebook: Notebook,
    service: &'static str,
    millis: u64,
    status: u16,
) -> Result<Page, FetchError> {
    let witness = notebook.witness(service);
    sleep(Duration::from_millis(millis)).await;
    if status != 200 {
        let error = FetchError::Status { service, status };
        witness.record(Ended::Failed(error.to_string()));
        return Err(error);
    }
    witness.record(Ended::Completed);
    Ok(Page {
        service,
        bytes: service.len() * 100,
    })
}

/// Where every task writes down how it ended.
#[derive(Clone)]
struct Notebook {
    started: Instant,
    fates: Arc<Mutex<Vec<Fate>>>,
}

impl Notebook {
    fn witness(&self, task: &'static str) -> Witness {
        Witness {
            task,
            ended: None,
            notebook: self.clone(),
        }
    }
}

/// Writes down how its task ended when it is dropped, which happens however
/// the task ends: a cancelled task's future is dropped *as that task*, so
/// `tethered::current()` can still say why.
struct Witness {
    task: &'static str,
    ended: Option<Ended>,
    notebook: Notebook,
}

impl Witness {
    /// Records an ending the witness cannot see for itself.
    fn record(mut self, ended: Ended) {
        self.ended = Some(ended);
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let ended =
            self.ended
                .take()
                .unwrap_or_else(|| match tethered::current().cancel_reason() {
                    Some(reason) => Ended::Cancelled(reason),
                    None => Ended::Completed,
                });
        let after = self.notebook.started.elapsed();
        lock(&self.notebook.fates).push(Fate {
            task: self.task,
            ended,
            after,
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One link of a reason chain, without its causes.
fn link(reason: &CancelReason) -> String {
    let mut text = reason.kind().to_string();
    if let Some(message) = reason.message() {
        text.push_str(": ");
        text.push_str(message);
    }
    text.push_str(&format!(" (at {}", reason.location()));
    if let Some(origin) = reason.origin() {
        text.push_str(&format!(", by `{origin}`"));
    }
    text.push(')');
    text
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== how each task ended ==")?;
        for Fate { task, ended, after } in &self.fates {
            let after = after.as_millis();
            match ended {
                Ended::Completed => writeln!(f, "{task:>17}: completed after {after} ms")?,
                Ended::Failed(error) => {
                    writeln!(f, "{task:>17}: failed after {after} ms: {error}")?;
                }
                Ended::Cancelled(reason) => {
                    writeln!(f, "{task:>17}: cancelled after {after} ms, because")?;
                    for (depth, cause) in reason.chain().enumerate() {
                        let lead = if depth == 0 { "" } else { "caused by: " };
                        writeln!(f, "{:>19}{lead}{}", "", link(cause))?;
                    }
                }
            }
        }
        writeln!(f)?;
        writeln!(f, "== what `dashboard` returned ==")?;
        match &self.result {
            Ok(dashboard) => writeln!(f, "{} pages", dashboard.pages.len())?,
            Err(error) => writeln!(f, "Err: {error}")?,
        }
        write!(
            f,
            "(after {} ms, instead of the 1200 ms the slowest fetch would have taken)",
            self.elapsed.as_millis()
        )
    }
}
