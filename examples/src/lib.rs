//! Runnable programs showing tethered's patterns.
//!
//! The programs live in `examples/`; the logic they share with their tests
//! lives here, one module per program:
//!
//! * [`worker`]: the README's demo (`cargo run --release -p
//!   tethered-examples --bin worker -- demo`), a job worker on a SQLite
//!   queue with a lease keeper, a single-instance lock row and a phased
//!   shutdown that loses no job.
//! * [`api`]: an HTTP service (axum, served by `tethered-hyper`) with a
//!   cache refreshed on a schedule, whose requests live in the task tree
//!   and are drained in phases on SIGTERM (`--bin api`).
//! * [`demo`]: a small task tree that fails, cancels and reports
//!   (`--example cancel_tree`).
//! * [`scoped_fetch`]: fan-out with `#[scoped]` (`--example scoped_fetch`);
//!   the first failed fetch cancels the others, which say why.
//! * [`helpers_on_exit`]: a connection whose helper tasks live exactly as
//!   long as it does, with `#[scoped(on_exit = cancel)]` and `defer!`
//!   (`--example helpers_on_exit`).
//! * [`periodic_overlap`]: the four overlap policies of `Periodic` side by
//!   side on a job slower than its period, and their counts
//!   (`--example periodic_overlap`).
//! * [`supervisor_service`]: a TCP line service under a `Supervisor`: one
//!   dynamic child per connection, a flaky static child restarted with
//!   backoff, a shielded flush, a phased shutdown on Ctrl-C and its report
//!   (`--example supervisor_service`).
//!
//! This crate also compiles every Rust snippet of the book (`book/src`) as a
//! doctest, so `cargo test` checks what the book says.

pub mod api;
pub mod demo;
pub mod helpers_on_exit;
pub mod output;
pub mod periodic_overlap;
pub mod scoped_fetch;
pub mod supervisor_service;
pub mod worker;

// The book's chapters and the README, doctested (as PyO3 does with its
// guide): every ```rust block in them must compile and run.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../../README.md")]
    struct Readme;

    #[doc = include_str!("../../book/src/introduction.md")]
    struct Introduction;

    #[doc = include_str!("../../book/src/why.md")]
    struct Why;

    #[doc = include_str!("../../book/src/getting-started.md")]
    struct GettingStarted;

    #[doc = include_str!("../../book/src/scopes.md")]
    struct Scopes;

    #[doc = include_str!("../../book/src/scoped.md")]
    struct Scoped;

    #[doc = include_str!("../../book/src/local.md")]
    struct Local;

    #[doc = include_str!("../../book/src/cancellation.md")]
    struct Cancellation;

    #[doc = include_str!("../../book/src/cancel-and-wait.md")]
    struct CancelAndWait;

    #[doc = include_str!("../../book/src/shields-and-cleanup.md")]
    struct ShieldsAndCleanup;

    #[doc = include_str!("../../book/src/supervisors.md")]
    struct Supervisors;

    #[doc = include_str!("../../book/src/periodic.md")]
    struct Periodic;

    #[doc = include_str!("../../book/src/shutdown.md")]
    struct Shutdown;

    #[doc = include_str!("../../book/src/servers.md")]
    struct Servers;

    #[doc = include_str!("../../book/src/worker.md")]
    struct Worker;

    #[doc = include_str!("../../book/src/lease-lock.md")]
    struct LeaseLock;

    #[doc = include_str!("../../book/src/fleet.md")]
    struct Fleet;

    #[doc = include_str!("../../book/src/compile-errors.md")]
    struct CompileErrors;

    #[doc = include_str!("../../book/src/task-tree.md")]
    struct TaskTree;

    #[doc = include_str!("../../book/src/metrics.md")]
    struct Metrics;

    #[doc = include_str!("../../book/src/testing.md")]
    struct Testing;

    #[doc = include_str!("../../book/src/performance.md")]
    struct Performance;

    #[doc = include_str!("../../book/src/comparison.md")]
    struct Comparison;

    #[doc = include_str!("../../book/src/limits.md")]
    struct Limits;
}
