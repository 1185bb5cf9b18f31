//! The command line (`clap`, derived): `worker --help` and
//! `worker <command> --help` say everything here.
//!
//! ```text
//! worker enqueue N [--db PATH|URL] [--init]
//! worker run [--db PATH|URL] [--init] [--concurrency N] [--grace DUR] [--work-ms N]
//!            [--slow-every N] [--slow-ms N] [--exit-when-empty] [--tree]
//! worker cancel JOB --reason TEXT --db URL
//! worker demo
//! ```
//!
//! `DUR` is a number with a unit: `500ms`, `5s`, `2m`.
//!
//! `run` also takes a hidden `--lease DUR` (not in the help), for tests:
//! the job lease, [`LEASE`](super::LEASE) by default; the lock row's expiry
//! and the renewal cadence are derived from it, so that a restart after a
//! SIGKILL can be made to wait well under a second.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The default database file.
pub const DEFAULT_DB: &str = "./worker.sqlite3";

/// The longest `--grace`: `main` gives the whole shutdown 60 s, which must
/// cover the grace, the supervisor's 5 s of cancellation and the cleanup.
pub const MAX_GRACE: Duration = Duration::from_secs(50);

/// A job queue in SQLite, worked under a supervisor and stopped in phases
/// by SIGTERM, SIGINT or SIGHUP: jobs in flight get a grace period to
/// finish, the rest go back to the queue, and nothing is lost.
#[derive(Debug, Parser)]
#[command(name = "worker", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Add N queued jobs to the queue (creating it if needed).
    Enqueue {
        /// How many jobs.
        #[arg(value_name = "N")]
        count: u64,
        /// The queue: a SQLite file, or a postgres:// URL.
        #[arg(long, value_name = "PATH|URL", default_value = DEFAULT_DB)]
        db: String,
        /// Add the worker's tables to a database that holds another
        /// program's (refused otherwise).
        #[arg(long)]
        init: bool,
    },
    /// Work the queue until stopped (or, with --exit-when-empty, until it
    /// is empty), then print `taken=… done=… returned=… lost=…`.
    Run(RunConfig),
    /// Cancel a job, wherever it runs (PostgreSQL): a queued job is
    /// cancelled at once; a running one's worker is told, cancels it, and
    /// records it `cancelled`, with the reason and who asked.
    Cancel {
        /// The job's id.
        #[arg(value_name = "JOB")]
        job: i64,
        /// Why (kept with the job, and given to its task as the reason).
        #[arg(long)]
        reason: String,
        /// The queue: a postgres:// URL.
        #[arg(long, value_name = "URL")]
        db: String,
    },
    /// Play the demo: 3,000 jobs, a worker stopped by SIGTERM partway
    /// through, a second one that finishes the queue, and a check that every
    /// job was done exactly once.
    Demo {
        /// The fleet on PostgreSQL instead: several workers on one queue, a
        /// SIGKILL and its rescue, a worker paused past its leases and the
        /// jobs it lost, a cancel from another process.
        #[arg(long)]
        fleet: bool,
        /// With --fleet: the PostgreSQL database to use (by default, a
        /// throwaway cluster started for the demo from the installed
        /// server).
        #[arg(long, value_name = "URL", requires = "fleet")]
        db: Option<String>,
    },
}

/// `worker run`'s options.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RunConfig {
    /// The queue: a SQLite file (one worker at a time), or a postgres://
    /// URL (as many workers as there are).
    #[arg(long, value_name = "PATH|URL", default_value = DEFAULT_DB)]
    pub db: String,
    /// Add the worker's tables to a database that holds another program's
    /// (refused otherwise).
    #[arg(long)]
    pub init: bool,
    /// How many jobs at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = at_least_one)]
    pub concurrency: usize,
    /// How long jobs in flight may finish after a stop; the ones still
    /// running are then cancelled and returned to the queue (at most 50s).
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = grace)]
    pub grace: Duration,
    /// How long one job works, in milliseconds.
    #[arg(long = "work-ms", value_name = "N", default_value = "20", value_parser = millis)]
    pub work: Duration,
    /// Make every N-th job (by id) a slow one, which works --slow-ms
    /// instead (0: none).
    #[arg(long = "slow-every", value_name = "N", default_value_t = 0)]
    pub slow_every: u64,
    /// How long a slow job works, in milliseconds.
    #[arg(long = "slow-ms", value_name = "N", default_value = "1500", value_parser = millis)]
    pub slow: Duration,
    /// Print the task tree when the shutdown begins, and at the end
    /// (SIGUSR1 prints it at any time).
    #[arg(long)]
    pub tree: bool,
    /// End once the queue is empty and nothing is in flight, rather than
    /// wait for more jobs.
    #[arg(long = "exit-when-empty")]
    pub exit_when_empty: bool,
    /// How long a job's lease lasts without renewal (at least 100ms).
    /// Leases and the lock row are renewed every
    /// [`renew_every`](super::renew_every) of it, and the lock row expires
    /// `lease + 2 × renew_every(lease)` after its last renewal: a killed
    /// process's lock and leases are stale that long after it died. For
    /// tests; shorter leases mean more writes.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = lease, hide = true)]
    pub lease: Duration,
    /// On PostgreSQL: enqueue a job every DUR (`scheduled <period>`), from
    /// whichever worker is the leader, once per period however many
    /// workers run (looked at on each leader tick: at most once a second).
    #[arg(long = "enqueue-every", value_name = "DUR", value_parser = duration)]
    pub enqueue_every: Option<Duration>,
    /// On PostgreSQL, how often an idle worker looks for jobs when no
    /// NOTIFY wakes it (an enqueue does, at once): a fallback for a
    /// listener that lost its connection, or runs behind a pooler that
    /// drops LISTEN. For tests.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration, hide = true)]
    pub poll: Duration,
    /// On PostgreSQL: make every N-th job (by id) fail, at every attempt:
    /// it is retried after a backoff until it has used up its attempts,
    /// then ends `failed` with its last error (0: none).
    #[arg(long = "fail-every", value_name = "N", default_value_t = 0)]
    pub fail_every: u64,
    /// The backoff before a failed job's first retry, doubled at each next
    /// one (up to 5 minutes) and jittered. For tests.
    #[arg(long = "retry-base", value_name = "DUR", default_value = "1s", value_parser = duration, hide = true)]
    pub retry_base: Duration,
}

impl RunConfig {
    /// The defaults, on `db` (a SQLite file's path, or a `postgres://`
    /// URL).
    pub fn new(db: impl AsRef<std::ffi::OsStr>) -> RunConfig {
        let Command::Run(mut config) = parse(&["run".to_owned()]).expect("the defaults parse")
        else {
            unreachable!("`run` parses as a run");
        };
        config.db = db.as_ref().to_string_lossy().into_owned();
        config
    }

    /// Whether job `id` fails ([`fail_every`](Self::fail_every)).
    pub fn fails(&self, id: i64) -> bool {
        self.fail_every > 0 && id.unsigned_abs().is_multiple_of(self.fail_every)
    }

    /// The options that need PostgreSQL, when `db` is a SQLite file and
    /// one of them is given: to refuse, rather than ignore.
    pub fn postgres_only(&self) -> Option<&'static str> {
        if super::store::is_postgres_url(&self.db) {
            return None;
        }
        if self.enqueue_every.is_some() {
            Some("--enqueue-every")
        } else if self.fail_every > 0 {
            Some("--fail-every")
        } else {
            None
        }
    }

    /// How long job `id` works: [`slow`](Self::slow) for every
    /// `slow_every`-th job, [`work`](Self::work) for the others.
    pub fn work_for(&self, id: i64) -> Duration {
        let slow = self.slow_every > 0 && id.unsigned_abs().is_multiple_of(self.slow_every);
        if slow { self.slow } else { self.work }
    }
}

/// Parses the arguments after the program's name. An error (or `--help`,
/// `--version`) is printed with [`clap::Error::print`], and exits with its
/// [`exit_code`](clap::Error::exit_code): 2 for bad input, 0 for help.
pub fn parse(args: &[String]) -> Result<Command, clap::Error> {
    let program = std::iter::once("worker".to_owned());
    Cli::try_parse_from(program.chain(args.iter().cloned())).map(|cli| cli.command)
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

fn millis(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))
}

fn grace(text: &str) -> Result<Duration, String> {
    let grace = duration(text)?;
    if grace > MAX_GRACE {
        return Err(format!(
            "must be at most {}: the process gives its whole shutdown 60s",
            humantime::format_duration(MAX_GRACE)
        ));
    }
    Ok(grace)
}

fn lease(text: &str) -> Result<Duration, String> {
    let lease = duration(text)?;
    if lease < Duration::from_millis(100) {
        return Err("must be at least 100ms".to_owned());
    }
    Ok(lease)
}

/// A duration as humantime reads it (`500ms`, `5s`, `2m`, `1h 30m`); a bare
/// number is refused: say the unit.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("`{text}` is not a duration like 500ms, 5s or 2m ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_run() {
        let Ok(Command::Run(config)) = parse(&args(
            "run --db /tmp/q.db --concurrency 3 --grace 250ms --work-ms 7 --slow-every 10 --slow-ms 90 --exit-when-empty --tree",
        )) else {
            panic!("not a run");
        };
        assert_eq!(config.db, "/tmp/q.db");
        assert_eq!(config.concurrency, 3);
        assert_eq!(config.grace, Duration::from_millis(250));
        assert_eq!(config.work, Duration::from_millis(7));
        assert!(config.exit_when_empty);
        assert!(config.tree);
        assert_eq!(config.work_for(20), Duration::from_millis(90));
        assert_eq!(config.work_for(21), Duration::from_millis(7));
        assert_eq!(config.lease, super::super::LEASE);
        let Ok(Command::Run(config)) = parse(&args("run --lease 600ms")) else {
            panic!("not a run");
        };
        assert_eq!(config.lease, Duration::from_millis(600));
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let config = RunConfig::new(DEFAULT_DB);
        assert_eq!(config.db, DEFAULT_DB);
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.work, Duration::from_millis(20));
        assert_eq!(
            (config.slow_every, config.slow),
            (0, Duration::from_millis(1500))
        );
        assert!(!config.tree && !config.exit_when_empty);
        assert_eq!(config.lease, super::super::LEASE);
    }

    #[test]
    fn rejects_bad_input() {
        for line in [
            "",
            "run --concurrency 0",
            "run --bogus",
            "run --grace 5",
            "run --grace 51s",
            "run --work-ms",
            "run --slow-every x",
            "run --slow-ms",
            "run --lease 50ms",
            "run --lease",
            "enqueue",
            "enqueue x",
            "frobnicate",
        ] {
            assert!(parse(&args(line)).is_err(), "{line:?} was accepted");
        }
        assert_eq!(
            parse(&args("enqueue 5 --db x")).unwrap(),
            Command::Enqueue {
                db: "x".to_owned(),
                count: 5,
                init: false,
            }
        );
    }

    #[test]
    fn help_is_not_an_error() {
        for line in ["--help", "run --help", "enqueue --help", "--version"] {
            let error = parse(&args(line)).unwrap_err();
            assert_eq!(error.exit_code(), 0, "{line}");
        }
        let help = Cli::command().render_long_help().to_string();
        for command in ["enqueue", "run", "demo"] {
            assert!(help.contains(command), "{help}");
        }
        assert!(!help.contains("--lease"));
    }
}
