//! `#[tethered::main]`'s signal handling, on a real process and real
//! signals: stop first, cancel after the grace period or on a second signal,
//! give up (exit 1, with the task tree) after the cancel timeout.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    stderr: BufReader<std::process::ChildStderr>,
    /// Lines of stderr read while waiting for one of them.
    seen: String,
    started: Instant,
}

fn start(mode: &str) -> Run {
    start_program(env!("CARGO_BIN_EXE_signals"), mode)
}

fn start_program(program: &str, mode: &str) -> Run {
    let mut child = Command::new(program)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the signals program");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "ready", "the program did not start");
    Run {
        child,
        stdout,
        stderr,
        seen: String::new(),
        started: Instant::now(),
    }
}

/// Reads stderr until a line contains `needle`: the program has got there.
fn wait_for(run: &mut Run, needle: &str) {
    loop {
        let mut line = String::new();
        let read = run.stderr.read_line(&mut line).expect("read stderr");
        assert!(read > 0, "stderr ended before `{needle}`: {}", run.seen);
        run.seen.push_str(&line);
        if line.contains(needle) {
            return;
        }
    }
}

fn signal(run: &Run, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), run.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    after: Duration,
}

fn wait(mut run: Run) -> Ended {
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut run.stdout, &mut stdout).expect("stdout");
    let mut stderr = std::mem::take(&mut run.seen);
    std::io::Read::read_to_string(&mut run.stderr, &mut stderr).expect("stderr");
    let status = run.child.wait().expect("wait");
    Ended {
        code: status.code(),
        stdout,
        stderr,
        after: run.started.elapsed(),
    }
}

#[test]
fn the_first_signal_asks_tasks_to_stop_and_a_clean_end_exits_0() {
    let run = start("polite");
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended.stdout.contains("stop: signal: received SIGTERM"),
        "{}",
        ended.stdout
    );
    assert!(
        ended.stderr.contains("received SIGTERM; stopping"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.after < Duration::from_millis(300),
        "no grace was needed: {:?}",
        ended.after
    );
}

#[test]
fn sighup_stops_like_sigterm_rather_than_killing_the_process() {
    let run = start("polite");
    signal(&run, "HUP");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended.stdout.contains("stop: signal: received SIGHUP"),
        "{}",
        ended.stdout
    );
    assert!(
        ended.stderr.contains("received SIGHUP; stopping"),
        "{}",
        ended.stderr
    );
}

#[test]
fn a_task_that_ignores_the_stop_is_cancelled_after_the_grace_period() {
    let run = start("stubborn");
    signal(&run, "INT");
    let ended = wait(run);
    assert_eq!(
        ended.code,
        Some(0),
        "a clean cancellation: {}",
        ended.stderr
    );
    assert!(
        ended.stdout.contains("cancelled: parent cancelled"),
        "{}",
        ended.stdout
    );
    assert!(
        ended.stdout.contains("signal: received SIGINT"),
        "{}",
        ended.stdout
    );
    assert!(
        ended.stderr.contains("grace period over; cancelling"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.after >= Duration::from_millis(300),
        "waited for the grace: {:?}",
        ended.after
    );
}

#[test]
fn a_second_signal_cancels_at_once() {
    let mut run = start("stubborn");
    signal(&run, "TERM");
    // Two signals in a row can reach the program as one: send the second
    // once the first has been handled.
    wait_for(&mut run, "received SIGTERM; stopping");
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("received SIGTERM again; cancelling now"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.after < Duration::from_millis(300),
        "the grace was skipped: {:?}",
        ended.after
    );
}

#[test]
fn tasks_still_running_after_the_cancel_timeout_are_reported_and_exit_1() {
    let run = start("stuck");
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("still running 300ms after cancellation"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.stderr.contains("shield `stuck`"),
        "the tree names it: {}",
        ended.stderr
    );
    assert!(
        ended.after >= Duration::from_millis(600),
        "grace + cancel timeout: {:?}",
        ended.after
    );
}

#[test]
fn a_task_blocking_the_only_thread_does_not_hold_up_the_signal_or_the_exit() {
    let run = start("blocked");
    // The task blocks the current-thread runtime 50 ms after it started.
    std::thread::sleep(Duration::from_millis(200));
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
    for said in [
        "received SIGTERM; stopping",
        "grace period over; cancelling",
        "still running 300ms after cancellation",
        "task `blocked`",
    ] {
        assert!(ended.stderr.contains(said), "`{said}` in: {}", ended.stderr);
    }
    assert!(
        ended.after < Duration::from_secs(5),
        "grace + cancel timeout, not the 60 s the task blocks: {:?}",
        ended.after
    );
}

#[test]
fn a_supervisor_that_may_outlast_mains_deadlines_is_reported_at_start() {
    let mut run = start("over-budget");
    wait_for(
        &mut run,
        "tethered: warning: supervisor `jobs` may take up to 15s",
    );
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("but `main` (grace 300ms + cancel timeout 300ms) gives it 600ms"),
        "{}",
        ended.stderr
    );
}

#[test]
fn sigusr1_prints_the_task_tree_and_the_program_goes_on() {
    let mut run = start("polite");
    signal(&run, "USR1");
    wait_for(&mut run, "tethered: the task tree (SIGUSR1):");
    wait_for(&mut run, "task `polite`");
    assert!(run.seen.contains("scope `main`"), "{}", run.seen);
    // Still running: a stop ends it as usual.
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended.stdout.contains("stop: signal: received SIGTERM"),
        "{}",
        ended.stdout
    );
}

#[test]
fn sigusr1_prints_the_tree_even_when_the_runtime_is_blocked() {
    let mut run = start("blocked");
    // The task blocks the current-thread runtime 50 ms after it started.
    std::thread::sleep(Duration::from_millis(200));
    signal(&run, "USR1");
    wait_for(&mut run, "tethered: the task tree (SIGUSR1):");
    wait_for(&mut run, "task `blocked`");
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
}

/// `flavor = "local"`: a `LocalRuntime`, whose root scope holds a local
/// child with an `Rc`; the stop, the grace and the cancellation as on the
/// other runtimes.
#[test]
fn a_local_main_stops_and_cancels_its_non_send_children_like_any_other() {
    let program = env!("CARGO_BIN_EXE_signals_local");
    let run = start_program(program, "polite");
    signal(&run, "TERM");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended
            .stdout
            .contains("stop (polite): signal: received SIGTERM"),
        "{}",
        ended.stdout
    );

    let run = start_program(program, "stubborn");
    signal(&run, "INT");
    let ended = wait(run);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended
            .stdout
            .contains("cancelled (stubborn): parent cancelled"),
        "{}",
        ended.stdout
    );
    assert!(
        ended.stderr.contains("grace period over; cancelling"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.after >= Duration::from_millis(300),
        "{:?}",
        ended.after
    );
}
