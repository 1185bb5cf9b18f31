//! The command line, parsed by hand.
//!
//! ```text
//! api [--addr ADDR] [--grace DUR] [--cancel-timeout DUR] [--refresh DUR]
//! ```
//!
//! `DUR` is a number with a unit: `500ms`, `5s`, `2m`.

use std::net::SocketAddr;
use std::time::Duration;

/// The usage text, printed after a usage error.
pub const USAGE: &str =
    "usage: api [--addr ADDR] [--grace DUR] [--cancel-timeout DUR] [--refresh DUR]";

/// The longest `--grace` plus `--cancel-timeout`: the drain must fit in
/// what the service's supervisor gives its body (see
/// [`SHUTDOWN_BUDGET`](super::SHUTDOWN_BUDGET)).
pub const MAX_DRAIN: Duration = Duration::from_secs(40);

/// The service's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen (`--addr`, default `127.0.0.1:3000`; port 0 picks a
    /// free one, printed at start).
    pub addr: SocketAddr,
    /// How long requests in flight may finish once the service drains
    /// (`--grace`, default 5 s).
    pub grace: Duration,
    /// How long the server waits for the requests it cancelled
    /// (`--cancel-timeout`, default 2 s).
    pub cancel_timeout: Duration,
    /// How often the cache is refreshed (`--refresh`, default 1 s).
    pub refresh: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            grace: Duration::from_secs(5),
            cancel_timeout: Duration::from_secs(2),
            refresh: Duration::from_secs(1),
        }
    }
}

/// Parses the arguments (without the program's name).
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match flag.as_str() {
            "--addr" => {
                let text = value()?;
                options.addr = text
                    .parse()
                    .map_err(|error| format!("`--addr {text}`: {error}"))?;
            }
            "--grace" => options.grace = duration(flag, value()?)?,
            "--cancel-timeout" => options.cancel_timeout = duration(flag, value()?)?,
            "--refresh" => options.refresh = duration(flag, value()?)?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.grace.saturating_add(options.cancel_timeout) > MAX_DRAIN {
        return Err(format!(
            "`--grace` plus `--cancel-timeout` must be at most {}",
            humantime::format_duration(MAX_DRAIN)
        ));
    }
    Ok(options)
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("`{flag} {text}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_every_option_and_refuses_a_drain_longer_than_its_budget() {
        let options = parse(&args(
            "--addr 127.0.0.1:0 --grace 2s --cancel-timeout 500ms --refresh 250ms",
        ))
        .unwrap();
        assert_eq!(options.addr.port(), 0);
        assert_eq!(options.grace, Duration::from_secs(2));
        assert_eq!(options.cancel_timeout, Duration::from_millis(500));
        assert_eq!(options.refresh, Duration::from_millis(250));
        assert_eq!(parse(&[]).unwrap(), Options::default());
        assert!(
            parse(&args("--grace 39s --cancel-timeout 2s"))
                .unwrap_err()
                .contains("at most 40s")
        );
        assert!(
            parse(&args("--grace"))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&args("--addr nowhere"))
                .unwrap_err()
                .contains("--addr nowhere")
        );
        assert!(
            parse(&args("--verbose"))
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
