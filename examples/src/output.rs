//! The programs' output lines, without the panic `println!` makes of a
//! stdout that cannot be written (a closed pipe, a full disk).

use std::fmt;
use std::io::Write;

/// Writes `line` on stdout. When stdout cannot be written, says so on
/// stderr, with the line, as `program`: what a program reports on stdout
/// is done (jobs enqueued, a run's counts, a server's report), and its
/// exit code stays that of the work, so that a script does not redo what
/// was done.
///
/// ```
/// tethered_examples::output::print_out("worker", "enqueued 3 jobs");
/// ```
pub fn print_out(program: &str, line: impl fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        say_err(format_args!(
            "{program}: cannot write to stdout ({error}); it said: {line}"
        ));
    }
}

/// Writes `line` on stderr, if it can be written at all.
///
/// ```
/// tethered_examples::output::say_err("api: draining");
/// ```
pub fn say_err(line: impl fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// [`print_out`] with `println!`'s arguments after the program's name.
///
/// ```
/// tethered_examples::outln!("demo", "started {} workers", 3);
/// ```
#[macro_export]
macro_rules! outln {
    ($program:expr, $($arg:tt)*) => {
        $crate::output::print_out($program, ::std::format_args!($($arg)*))
    };
}

/// [`say_err`] with `eprintln!`'s arguments: an `eprintln!` that does not
/// panic when stderr cannot be written.
///
/// ```
/// tethered_examples::errln!("api: draining ({})", "SIGTERM");
/// ```
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::say_err(::std::format_args!($($arg)*))
    };
}
