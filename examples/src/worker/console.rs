//! What the worker tells its operator: a progress bar when stdout is a
//! terminal, plain lines on stderr otherwise (a log, a pipe, the demo).
//!
//! Every message goes through [`Console::say`], which hides the bar while
//! it writes, so that messages and the bar never garble each other.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The worker's output.
#[derive(Debug)]
pub struct Console {
    bar: Option<ProgressBar>,
}

/// The counts shown on each progress tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Jobs in flight in this process.
    pub in_flight: u64,
    /// Jobs this process took, finished and returned.
    pub taken: u64,
    /// Jobs this process finished.
    pub done: u64,
    /// Jobs this process returned to the queue.
    pub returned: u64,
    /// Jobs not done yet in the whole queue: queued, or taken by anyone.
    pub remaining: u64,
}

impl Console {
    /// A bar on stdout if stdout is a terminal; plain lines otherwise.
    pub fn for_stdout() -> Console {
        if !std::io::stdout().is_terminal() {
            return Console::plain();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} jobs done, {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Console { bar: Some(bar) }
    }

    /// Plain lines, whatever stdout is.
    pub fn plain() -> Console {
        Console { bar: None }
    }

    /// Writes `worker: {message}` on stderr.
    pub fn say(&self, message: impl fmt::Display) {
        match &self.bar {
            Some(bar) => bar.suspend(|| crate::errln!("worker: {message}")),
            None => crate::errln!("worker: {message}"),
        }
    }

    /// Moves the bar, or writes a line of counts.
    pub fn progress(&self, progress: Progress) {
        let Progress {
            in_flight,
            taken,
            done,
            returned,
            remaining,
        } = progress;
        match &self.bar {
            Some(bar) => {
                bar.set_length(done + remaining);
                bar.set_position(done);
                bar.set_message(format!("{in_flight} in flight, {returned} returned"));
            }
            None => self.say(format_args!(
                "in_flight={in_flight} taken={taken} done={done} returned={returned} remaining={remaining}"
            )),
        }
    }

    /// Takes the bar off the screen, before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
