//! The command line, parsed by hand.
//!
//! ```text
//! worker enqueue N [--db PATH]
//! worker run [--db PATH] [--concurrency N] [--grace DUR] [--work-ms N]
//!            [--slow-every N] [--slow-ms N] [--exit-when-empty] [--tree]
//! worker demo
//! ```
//!
//! `DUR` is a number with a unit: `500ms`, `5s`, `2m`.
//!
//! `run` also takes a hidden `--lease DUR` (not in the usage text), for
//! tests: the job lease, [`LEASE`](super::LEASE) by default; the lock row's
//! expiry and the renewal cadence are derived from it, so that a restart
//! after a SIGKILL can be made to wait well under a second.

use std::path::PathBuf;
use std::time::Duration;

/// The default database file.
pub const DEFAULT_DB: &str = "./worker.sqlite3";

/// The longest `--grace`: `main` gives the whole shutdown 60 s, which must
/// cover the grace, the supervisor's 5 s of cancellation and the cleanup.
pub const MAX_GRACE: Duration = Duration::from_secs(50);

/// The usage text, printed after a usage error.
pub const USAGE: &str = "usage: worker enqueue N [--db PATH] | worker run [--db PATH] [--concurrency N] [--grace DUR] [--work-ms N] [--slow-every N] [--slow-ms N] [--exit-when-empty] [--tree] | worker demo";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Add `count` queued jobs to `db`.
    Enqueue {
        /// The database file.
        db: PathBuf,
        /// How many jobs.
        count: u64,
    },
    /// Work the queue.
    Run(RunConfig),
    /// Play the demo.
    Demo,
}

/// `worker run`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// The database file (`--db`, default [`DEFAULT_DB`]).
    pub db: PathBuf,
    /// How many jobs at once (`--concurrency`, default 8, at least 1).
    pub concurrency: usize,
    /// How long jobs in flight may finish after a stop (`--grace`, default
    /// 5 s, at most [`MAX_GRACE`]); the ones still running are then
    /// cancelled and returned.
    pub grace: Duration,
    /// How long one job "works" (`--work-ms`, default 20).
    pub work: Duration,
    /// Every `slow_every`-th job (by id) is a slow one (`--slow-every`,
    /// default 0: none), which works [`slow`](Self::slow) instead.
    pub slow_every: u64,
    /// How long a slow job works (`--slow-ms`, default 1500).
    pub slow: Duration,
    /// Print the task tree when the shutdown begins, and at the end
    /// (`--tree`). SIGUSR1 prints it at any time, as in every
    /// `#[tethered::main]` program.
    pub tree: bool,
    /// End once the queue is empty and nothing is in flight
    /// (`--exit-when-empty`), rather than wait for more jobs.
    pub exit_when_empty: bool,
    /// How long a job's lease lasts without renewal (hidden `--lease`,
    /// default [`LEASE`](super::LEASE), at least 100 ms). Leases and the
    /// lock row are renewed every [`renew_every`](super::renew_every) of it,
    /// and the lock row expires `lease + 2 × renew_every(lease)` after its
    /// last renewal: a killed process's lock and leases are stale that long
    /// after it died. Meant for tests; shorter leases mean more writes.
    pub lease: Duration,
}

impl RunConfig {
    /// The defaults, on `db`.
    pub fn new(db: impl Into<PathBuf>) -> RunConfig {
        RunConfig {
            db: db.into(),
            concurrency: 8,
            grace: Duration::from_secs(5),
            work: Duration::from_millis(20),
            slow_every: 0,
            slow: Duration::from_millis(1500),
            tree: false,
            exit_when_empty: false,
            lease: super::LEASE,
        }
    }

    /// How long job `id` works: [`slow`](Self::slow) for every
    /// `slow_every`-th job, [`work`](Self::work) for the others.
    pub fn work_for(&self, id: i64) -> Duration {
        let slow = self.slow_every > 0 && id.unsigned_abs().is_multiple_of(self.slow_every);
        if slow { self.slow } else { self.work }
    }
}

/// Parses the arguments after the program's name. The error is one line.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("missing command (enqueue, run or demo)".to_owned());
    };
    match command.as_str() {
        "enqueue" => {
            let mut db = PathBuf::from(DEFAULT_DB);
            let mut count = None;
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--db" => db = PathBuf::from(value(&mut rest, "--db")?),
                    flag if flag.starts_with('-') => {
                        return Err(format!("unknown flag `{flag}` for enqueue"));
                    }
                    n if count.is_none() => count = Some(number(n, "N")?),
                    extra => return Err(format!("unexpected argument `{extra}`")),
                }
            }
            let count = count.ok_or("enqueue needs a count: worker enqueue N")?;
            Ok(Command::Enqueue { db, count })
        }
        "run" => {
            let mut config = RunConfig::new(DEFAULT_DB);
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--db" => config.db = PathBuf::from(value(&mut rest, "--db")?),
                    "--concurrency" => {
                        let n = number(value(&mut rest, "--concurrency")?, "--concurrency")?;
                        if n == 0 {
                            return Err("--concurrency must be at least 1".to_owned());
                        }
                        config.concurrency = usize::try_from(n)
                            .map_err(|_| format!("--concurrency {n} is too large"))?;
                    }
                    "--grace" => {
                        config.grace = duration("--grace", value(&mut rest, "--grace")?)?;
                        if config.grace > MAX_GRACE {
                            return Err(format!(
                                "--grace must be at most {}: the process gives its whole shutdown 60s",
                                humantime::format_duration(MAX_GRACE)
                            ));
                        }
                    }
                    "--work-ms" => {
                        let ms = number(value(&mut rest, "--work-ms")?, "--work-ms")?;
                        config.work = Duration::from_millis(ms);
                    }
                    "--slow-every" => {
                        config.slow_every =
                            number(value(&mut rest, "--slow-every")?, "--slow-every")?;
                    }
                    "--slow-ms" => {
                        let ms = number(value(&mut rest, "--slow-ms")?, "--slow-ms")?;
                        config.slow = Duration::from_millis(ms);
                    }
                    "--exit-when-empty" => config.exit_when_empty = true,
                    "--tree" => config.tree = true,
                    // Hidden: for tests (see `RunConfig::lease`).
                    "--lease" => {
                        config.lease = duration("--lease", value(&mut rest, "--lease")?)?;
                        if config.lease < Duration::from_millis(100) {
                            return Err("--lease must be at least 100ms".to_owned());
                        }
                    }
                    flag if flag.starts_with('-') => {
                        return Err(format!("unknown flag `{flag}` for run"));
                    }
                    extra => return Err(format!("unexpected argument `{extra}`")),
                }
            }
            Ok(Command::Run(config))
        }
        "demo" => match rest.first() {
            None => Ok(Command::Demo),
            Some(extra) => Err(format!("unexpected argument `{extra}` for demo")),
        },
        other => Err(format!("unknown command `{other}` (enqueue, run or demo)")),
    }
}

fn value<'a>(rest: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str, String> {
    rest.next()
        .map(String::as_str)
        .ok_or_else(|| format!("{flag} needs a value"))
}

fn number(text: &str, what: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{what}: `{text}` is not a whole number"))
}

/// A duration as humantime reads it (`500ms`, `5s`, `2m`, `1h 30m`); a bare
/// number is refused: say the unit.
pub fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| {
        format!("{flag}: `{text}` is not a duration like 500ms, 5s or 2m ({error})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_run() {
        let Ok(Command::Run(config)) = parse(&args(
            "run --db /tmp/q.db --concurrency 3 --grace 250ms --work-ms 7 --slow-every 10 --slow-ms 90 --exit-when-empty --tree",
        )) else {
            panic!("not a run");
        };
        assert_eq!(config.db, PathBuf::from("/tmp/q.db"));
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
            parse(&args("enqueue 5 --db x")),
            Ok(Command::Enqueue {
                db: PathBuf::from("x"),
                count: 5
            })
        );
    }
}
