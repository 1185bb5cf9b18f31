//! `api`: an HTTP service whose connections and requests live in the task
//! tree, drained in phases on SIGTERM or Ctrl-C (the `api` program).
//!
//! The service is a supervisor with two parts: a static child refreshing
//! a cache on a `#[periodic(overlap = skip)]` schedule, and, as its body,
//! a [`tethered_hyper::Server`] serving an axum router (see [`app`]). On
//! SIGTERM, `#[tethered::main]` stops the tree: the server closes its
//! listener at once, `/ready` answers 503, connections are told to finish,
//! requests in flight get the grace, the rest are cancelled with the
//! signal as their reason, and the server's report is printed on stdout:
//! every connection, every request the drain cut short.
//!
//! ```text
//! $ api --addr 127.0.0.1:3000 --grace 5s
//! listening on http://127.0.0.1:3000
//! ^C
//! api: draining (signal: received SIGINT …); new connections are refused
//! …the report…
//! ```

pub mod app;
pub mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tethered::Supervisor;
use tethered_hyper::Server;
use tokio::net::TcpListener;

/// What the service's supervisor gives its body (the server) to drain,
/// and its cancel timeout: the server's grace and cancel timeout must fit
/// in it (see [`cli::MAX_DRAIN`]).
pub const SHUTDOWN_BUDGET: (Duration, Duration) = (Duration::from_secs(40), Duration::from_secs(5));

/// Runs the service with `args` (without the program's name) until it is
/// stopped, then prints the server's report.
pub async fn main(args: Vec<String>) -> ExitCode {
    let options = match cli::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            crate::errln!("api: {error}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .init();
    // Installed before anything is supervised: tethered registers its
    // metrics as supervisors and schedules start.
    let metrics = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(error) => {
            crate::errln!("api: no metrics: {error}");
            None
        }
    };
    let listener = match TcpListener::bind(options.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            crate::errln!("api: cannot listen on {}: {error}", options.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    crate::outln!("api", "listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let server = Server::new(listener)
        .name("api")
        .grace(options.grace)
        .cancel_timeout(options.cancel_timeout);
    let state = app::AppState::new(server.readiness(), metrics.clone());
    serve(server, state, metrics, options.refresh)
        .await
        .unwrap_or_else(|error| {
            crate::errln!("api: the service failed: {error}");
            ExitCode::FAILURE
        })
}

/// The service, until it is stopped; prints the server's report. When it
/// is cut short (a second signal cancels `main` during the drain), the
/// server's report is lost with its future, and the cleanup prints the
/// service's shutdown report instead: what was running, and what was cut.
#[tethered::scoped]
async fn serve(
    server: Server<TcpListener>,
    state: Arc<app::AppState>,
    metrics: Option<PrometheusHandle>,
    refresh: Duration,
) -> Result<ExitCode, tethered::ScopeError> {
    let service: Arc<OnceLock<Supervisor>> = Arc::new(OnceLock::new());
    let reported = Arc::new(AtomicBool::new(false));
    {
        let (service, reported, state) = (service.clone(), reported.clone(), state.clone());
        defer!(async move {
            if reported.load(Ordering::SeqCst) {
                return;
            }
            if let Some(service) = service.get() {
                let report = service.shutdown("the service was cut short").await;
                crate::outln!(
                    "api",
                    "api: cut short before the server reported; the service's shutdown:\n{report}"
                );
            }
            audit_line(&state);
        });
    }
    let app = app::router(state.clone());
    let readiness = server.readiness();
    let supervised = tethered::supervise! {
        name: "service",
        shutdown: grace (SHUTDOWN_BUDGET.0) then cancel (SHUTDOWN_BUDGET.1),
        child "cache" (shutdown "1s") => app::refresh_cache(state.clone(), refresh),
        child "metrics upkeep" (shutdown "1s") => {
            let metrics = metrics.clone();
            async move {
                match metrics {
                    Some(handle) => app::metrics_upkeep(handle).await.map(drop),
                    // Nothing to keep up: wait for the shutdown.
                    None => {
                        tethered::stop_requested().await;
                        Ok(())
                    }
                }
            }
        },
        body |sv| {
            let _ = service.set(sv.clone());
            let _ = sv.spawn("drain notice", async move {
                let reason = readiness.draining().await;
                crate::errln!("api: draining ({reason}); new connections are refused");
            });
            server.serve(app).await
        },
    };
    reported.store(true, Ordering::SeqCst);
    let served = match supervised {
        Ok(supervised) => match supervised.value {
            Some(Ok(served)) => served,
            Some(Err(error)) => {
                crate::errln!("api: the server failed: {error}");
                return Ok(ExitCode::FAILURE);
            }
            None => {
                crate::errln!("api: the server was cancelled before it reported");
                return Ok(ExitCode::FAILURE);
            }
        },
        Err(error) => {
            crate::errln!("api: the service failed: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    crate::outln!("api", "{served}");
    audit_line(&state);
    Ok(if served.requests().stragglers.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the handlers wrote, and the cache's last version: the last line.
fn audit_line(state: &app::AppState) {
    crate::outln!(
        "api",
        "api: audit records written: {}, cache version: {}",
        state.audited(),
        state.cache_version()
    );
}
