//! The service's routes, their state, and the cache refresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tethered::{periodic, scoped};
use tethered_hyper::Readiness;
use tokio::time::sleep;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Whether the server drains, for `/ready`.
    readiness: Readiness,
    /// The cache's version: how many refreshes have completed.
    cache: RwLock<u64>,
    /// How many audit records have been written.
    audited: AtomicU64,
    /// The metrics recorder's handle, for `/metrics`.
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// The state of a service whose server reports `readiness`, and whose
    /// metrics (if any) `metrics` renders.
    pub fn new(readiness: Readiness, metrics: Option<PrometheusHandle>) -> Arc<Self> {
        Arc::new(AppState {
            readiness,
            cache: RwLock::new(0),
            audited: AtomicU64::new(0),
            metrics,
        })
    }

    /// How many audit records have been written.
    pub fn audited(&self) -> u64 {
        self.audited.load(Ordering::SeqCst)
    }

    /// The cache's version.
    pub fn cache_version(&self) -> u64 {
        *self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The routes:
///
/// * `GET /`: `hello`;
/// * `GET /ready`: 200 `ready`, or 503 `draining: <reason>` from the moment
///   the server's stop arrives;
/// * `GET /cache`: the cache's version;
/// * `GET /work/{ms}/{id}`: two backend calls side by side, `ms` and
///   `ms / 2` long, in a `#[scoped]` handler;
/// * `POST /orders/{id}`: accepts an order, writing its audit record in a
///   shield, which a client going away does not cut short;
/// * `GET /tree`: the task tree, as `tethered::tree()` prints it;
///   `GET /tree.json`, as data;
/// * `GET /metrics`: tethered's metrics (supervisors, the cache's schedule,
///   scopes that failed), in Prometheus's text format.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/ready", get(ready))
        .route("/cache", get(cache))
        .route("/work/{ms}/{id}", get(work))
        .route("/orders/{id}", post(order))
        .route("/tree", get(|| async { tethered::tree().to_string() }))
        .route("/tree.json", get(tree_json))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (StatusCode::NOT_FOUND, "no metrics recorder\n").into_response(),
    }
}

async fn tree_json() -> Response {
    match serde_json::to_string_pretty(&tethered::tree()) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, String) {
    match state.readiness.reason() {
        None => (StatusCode::OK, "ready\n".into()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("draining: {reason}\n"),
        ),
    }
}

async fn cache(State(state): State<Arc<AppState>>) -> String {
    format!("cache version {}\n", state.cache_version())
}

async fn work(Path((ms, id)): Path<(u64, u64)>) -> String {
    backends(Duration::from_millis(ms), id).await
}

/// Calls two backends side by side, and answers once both are done (the
/// scope joins them). If the client goes away, or the drain's grace runs
/// out, both are cancelled, with that reason.
#[scoped]
async fn backends(time: Duration, id: u64) -> String {
    spawn!("database", sleep(time));
    spawn!("index", sleep(time / 2));
    format!("done {id}\n")
}

async fn order(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> String {
    accept_order(state, id).await
}

/// Accepts an order. Its audit record is written in a shield: once begun,
/// it is finished, whether the client waits for the answer or not, and the
/// server's drain waits for it. A client that goes away cancels the rest,
/// with a reason that says so.
#[scoped]
async fn accept_order(state: Arc<AppState>, id: u64) -> String {
    // Runs however the scope ends; says why, when it was cut short.
    defer!(async move {
        if let Some(reason) = tethered::current().cancel_reason() {
            crate::errln!("api: order {id} cut short: {reason}");
        }
    });
    shield!("audit record", async move {
        sleep(Duration::from_millis(200)).await; // the write
        state.audited.fetch_add(1, Ordering::SeqCst);
    });
    format!("order {id} accepted\n")
}

/// Keeps the metrics recorder's histograms from growing without bound:
/// the Prometheus recorder asks its owner to run its upkeep regularly.
#[periodic(every = "5s", overlap = skip)]
pub async fn metrics_upkeep(handle: PrometheusHandle) {
    handle.run_upkeep();
}

/// Refreshes the cache from its origin (a 50 ms fetch). A refresh slower
/// than the period is never run twice at once: the tick that finds one
/// running is skipped.
#[periodic(every = (every), overlap = skip)]
pub async fn refresh_cache(state: Arc<AppState>, every: Duration) {
    sleep(Duration::from_millis(50)).await;
    *state
        .cache
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
}
