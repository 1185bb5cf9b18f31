//! The `worker` binary on a real queue: a SIGTERM in the middle leaves no
//! job taken and none done twice, a second run finishes the queue, a second
//! instance is refused while the first holds the lock, bad input exits 2.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output};
use std::time::Duration;

use tethered_examples::worker::Summary;

mod common;

use common::{TempDb, WORKER, count, enqueue, finish, finish_with_stderr, signal, spawn_run};

fn worker(args: &[&str]) -> Output {
    Command::new(WORKER)
        .args(args)
        .output()
        .expect("run worker")
}

/// Starts `worker run --db … extra…` and waits until it says it runs.
fn start(db: &TempDb, extra: &[&str]) -> (Child, BufReader<ChildStderr>) {
    let (child, stderr, line) = spawn_run(db, extra);
    assert!(
        line.contains("running on"),
        "the worker did not start: {line:?}"
    );
    (child, stderr)
}

fn terminate(child: &Child) {
    signal(child, "-TERM");
}

fn assert_said(stderr: &str, lines: &[&str]) {
    for line in lines {
        assert!(stderr.contains(line), "no {line:?} in:\n{stderr}");
    }
}

fn check_clean(db: &Path) {
    assert_eq!(
        count(db, "SELECT count(*) FROM jobs WHERE state = 'taken'"),
        0
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM jobs WHERE done_count > 1"),
        0
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM instance_lock"),
        0,
        "the lock row was left"
    );
}

#[test]
fn sigterm_leaves_nothing_taken_and_a_second_run_finishes() {
    let db = TempDb::new("sigterm");
    enqueue(&db, 200);
    let (child, stderr) = start(&db, &["--concurrency", "4", "--work-ms", "50"]);
    std::thread::sleep(Duration::from_millis(500));
    terminate(&child);
    let (first, said) = finish_with_stderr(child, stderr);
    assert_said(
        &said,
        &[
            "shutdown 1/4: stop taking jobs: signal: received SIGTERM",
            "shutdown 3/4: every job in flight finished within the grace; nothing to cancel",
            "shutdown 4/4: supervisor `worker` stopped in",
            "0 cancelled and returned, 0 failed or still running",
            "lock: watchdog cancelled and joined, then the lock row deleted",
        ],
    );
    assert_eq!(first.lost, 0);
    assert!(first.done > 0, "{first:?}");
    assert!(
        first.done < 200,
        "the queue was done before the signal: {first:?}"
    );
    assert_eq!(first.taken, first.done + first.returned);
    check_clean(&db.path());
    let done = count(&db.path(), "SELECT count(*) FROM jobs WHERE state = 'done'");
    assert_eq!(u64::try_from(done).unwrap(), first.done);

    let (child, stderr) = start(
        &db,
        &["--concurrency", "8", "--work-ms", "5", "--exit-when-empty"],
    );
    let second = finish(child, stderr);
    assert_eq!(second.lost, 0);
    assert_eq!(first.done + second.done, 200, "{first:?} then {second:?}");
    assert_eq!(
        count(&db.path(), "SELECT count(*) FROM jobs WHERE state = 'done'"),
        200
    );
    check_clean(&db.path());
}

#[test]
fn jobs_cancelled_after_the_grace_period_are_returned() {
    let db = TempDb::new("grace");
    enqueue(&db, 20);
    // Jobs of 10 s, a grace of 100 ms: the jobs in flight are cancelled.
    let (child, stderr) = start(
        &db,
        &[
            "--concurrency",
            "3",
            "--work-ms",
            "10000",
            "--grace",
            "100ms",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    terminate(&child);
    let (summary, said) = finish_with_stderr(child, stderr);
    assert_said(
        &said,
        &[
            "shutdown 1/4: stop taking jobs: signal: received SIGTERM",
            "shutdown 2/4: 3 jobs in flight get up to 100ms to finish",
            "shutdown 3/4: grace over; cancelling the 3 jobs still running \
             (each returns its job to the queue), reason: timed out: still running when \
             the shutdown's grace of 100ms ran out",
            "caused by: signal: received SIGTERM",
            "0 jobs finished after the stop, 3 cancelled and returned, 0 failed or still running",
        ],
    );
    assert_eq!(
        summary,
        Summary {
            taken: 3,
            done: 0,
            returned: 3,
            lost: 0,
            ..Default::default()
        }
    );
    check_clean(&db.path());
    assert_eq!(
        count(
            &db.path(),
            "SELECT count(*) FROM jobs WHERE state = 'queued'"
        ),
        20
    );
    // The interrupted take still counts as an attempt.
    assert_eq!(count(&db.path(), "SELECT sum(attempts) FROM jobs"), 3);
}

#[test]
fn sigusr1_prints_the_task_tree_and_tree_prints_it_at_the_stop_and_at_the_end() {
    let db = TempDb::new("tree");
    enqueue(&db, 10);
    let (child, mut stderr) = start(
        &db,
        &[
            "--tree",
            "--concurrency",
            "2",
            "--work-ms",
            "10000",
            "--grace",
            "100ms",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-USR1");
    // The tree follows its heading, one line per node, and ends with a
    // blank line.
    let mut tree = String::new();
    let mut line = String::new();
    while !tree.ends_with("\n\n") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read stderr") > 0,
            "{tree}"
        );
        if !tree.is_empty() || line.contains("tethered: the task tree (SIGUSR1):") {
            tree.push_str(&line);
        }
    }
    assert_said(
        &tree,
        &[
            "scope `main`",
            "scope `held`",
            "task `lock-watchdog`",
            "supervisor `worker`",
            "task `metrics`",
            "task `job-1`",
            "scope `work`",
            "shield `lease`",
            "task `job-2`",
        ],
    );
    terminate(&child);
    let (summary, said) = finish_with_stderr(child, stderr);
    assert_eq!(summary.lost, 0);
    assert_said(
        &said,
        &["the task tree as the shutdown begins:", "task `job-1`"],
    );
    let end = said
        .split("the task tree at the end:")
        .nth(1)
        .unwrap_or_else(|| panic!("no tree at the end in:\n{said}"));
    assert!(end.contains("scope `main`"), "{end}");
    assert!(!end.contains("task `"), "a task outlived the run: {end}");
}

#[test]
fn a_second_instance_is_refused_while_the_first_holds_the_lock() {
    let db = TempDb::new("lock");
    enqueue(&db, 50);
    let (child, stderr) = start(&db, &["--concurrency", "1", "--work-ms", "200"]);
    let pid = child.id();
    let second = worker(&["run", "--db", &db.arg()]);
    let message = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{message}");
    assert!(message.contains("locked by `worker-"), "{message}");
    assert!(message.contains(&format!("(pid {pid})")), "{message}");
    assert!(second.stdout.is_empty());

    terminate(&child);
    let summary = finish(child, stderr);
    assert_eq!(summary.lost, 0);
    check_clean(&db.path());
}

#[test]
fn a_second_sigterm_still_ends_with_the_last_phase_and_the_summary() {
    let db = TempDb::new("twice");
    enqueue(&db, 20);
    // Jobs of 10 s, a grace of 1 s: the second signal comes during it.
    let (child, mut stderr) = start(
        &db,
        &["--concurrency", "3", "--work-ms", "10000", "--grace", "1s"],
    );
    std::thread::sleep(Duration::from_millis(300));
    terminate(&child);
    let mut said = String::new();
    while !said.contains("shutdown 2/4") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{said}");
        said.push_str(&line);
    }
    terminate(&child);
    let (summary, rest) = finish_with_stderr(child, stderr);
    let said = said + &rest;
    assert_said(
        &said,
        &[
            "received SIGTERM again; cancelling now",
            "shutdown 3/4: grace over; cancelling the 3 jobs still running",
            "0 jobs finished after the stop, 3 cancelled and returned, 0 failed or still running",
            "lock: watchdog cancelled and joined, then the lock row deleted",
        ],
    );
    assert_eq!(
        summary,
        Summary {
            taken: 3,
            done: 0,
            returned: 3,
            lost: 0,
            ..Default::default()
        }
    );
    check_clean(&db.path());
}

#[test]
fn an_unwritable_stdout_does_not_turn_done_work_into_a_failure() {
    let db = TempDb::new("full");
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full") else {
        return; // No /dev/full here: nothing to check with.
    };
    // A completed enqueue: exit 0, and stderr says what stdout could not.
    let out = Command::new(WORKER)
        .args(["enqueue", "7", "--db", &db.arg()])
        .stdout(full.try_clone().unwrap())
        .output()
        .expect("run worker");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("cannot write to stdout"), "{said}");
    assert!(said.contains("enqueued 7 jobs (7 in total)"), "{said}");
    assert_eq!(count(&db.path(), "SELECT count(*) FROM jobs"), 7);

    // A completed run: the same, with its summary.
    let out = Command::new(WORKER)
        .args([
            "run",
            "--db",
            &db.arg(),
            "--work-ms",
            "1",
            "--exit-when-empty",
        ])
        .stdout(full)
        .output()
        .expect("run worker");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("taken=7 done=7 returned=0 lost=0"), "{said}");
}

/// Every table of the database at `path`, and its SQLite header's marks.
fn describe(path: &Path) -> (Vec<String>, i64, String) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut tables = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables = tables
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    let id = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .unwrap();
    let mode = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    (tables, id, mode)
}

#[test]
fn another_programs_database_is_refused_and_left_as_it_was() {
    let db = TempDb::new("foreign");
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER);",
        )
        .unwrap();
    }
    let before = describe(&db.path());
    assert_eq!(before.2, "delete");
    for args in [
        vec!["enqueue", "3", "--db", &db.arg()],
        vec!["run", "--exit-when-empty", "--db", &db.arg()],
    ] {
        let out = worker(&args);
        let message = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(
            message.contains("another program's tables (`customers`, `orders`)"),
            "{message}"
        );
        assert!(message.contains("--init"), "{message}");
        // Not a table more, not switched to WAL.
        assert_eq!(describe(&db.path()), before);
    }

    // Asked to: the worker's tables beside the others.
    let out = worker(&["enqueue", "3", "--init", "--db", &db.arg()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (tables, id, _) = describe(&db.path());
    assert_eq!(tables, ["customers", "instance_lock", "jobs", "orders"]);
    assert_eq!(id, 0x5457_524B);
    // Marked as the worker's now: no --init needed.
    let out = worker(&["enqueue", "2", "--db", &db.arg()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(5 in total)"));
}

#[test]
fn a_foreign_jobs_table_is_one_line_and_an_empty_path_says_so() {
    let db = TempDb::new("jobs");
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.execute_batch("CREATE TABLE jobs (name TEXT, cron TEXT);")
            .unwrap();
    }
    let out = worker(&["enqueue", "3", "--init", "--db", &db.arg()]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("it has a table `jobs` of its own"),
        "{message}"
    );

    let out = worker(&["enqueue", "3", "--db", ""]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("the path is empty"), "{message}");
}

#[test]
fn help_lists_every_command_and_exits_0() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["enqueue", "--help"],
    ] {
        let out = worker(&args);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {help}");
        assert!(help.contains("Usage: worker"), "{args:?}: {help}");
    }
    let out = worker(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["enqueue", "run", "demo"] {
        assert!(help.contains(command), "{help}");
    }
    let out = worker(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--db",
        "--concurrency",
        "--grace",
        "--exit-when-empty",
        "--tree",
    ] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn bad_input_exits_2_saying_what_is_wrong() {
    let db = TempDb::new("bad");
    for (args, says) in [
        (
            vec!["run", "--concurrency", "0", "--db", &db.arg()],
            "must be at least 1",
        ),
        (
            vec!["run", "--frobnicate", "--db", &db.arg()],
            "unexpected argument '--frobnicate'",
        ),
        (vec!["run", "--grace", "5"], "is not a duration"),
        (
            vec!["enqueue", "many", "--db", &db.arg()],
            "invalid value 'many'",
        ),
        (vec!["dance"], "unrecognized subcommand 'dance'"),
        (vec![], "Usage: worker"),
    ] {
        let out = worker(&args);
        let message = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.contains(says), "{args:?}: {message}");
    }
    assert!(!db.path().exists(), "bad arguments created the database");

    // Not a database: refused, and left as it was.
    let garbage =
        "this is not a database, just text that is long enough to be a header\n".repeat(4);
    std::fs::write(db.path(), &garbage).unwrap();
    let out = worker(&["run", "--db", &db.arg()]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("not a database"), "{message}");
    assert_eq!(std::fs::read_to_string(db.path()).unwrap(), garbage);

    // A directory that does not exist.
    let missing = db.dir().join("no/such/dir/queue.sqlite3");
    let out = worker(&["enqueue", "3", "--db", &missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
