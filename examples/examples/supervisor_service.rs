//! A TCP line service under a supervisor, stopped by Ctrl-C.
//!
//! ```text
//! cargo run -p tethered-examples --example supervisor_service [-- --demo] [--addr ADDR] [--summary PATH]
//! ```
//!
//! Listens on `127.0.0.1:0` (the bound address is printed) and echoes each
//! line upper-cased; `/stats` answers with the supervisor's counts. Try it
//! with `nc 127.0.0.1 <port>`. A background child, `flaky-stats`, prints the
//! counts every second and fails every third second; the supervisor
//! restarts it with backoff, and `tracing` logs each restart on stderr.
//!
//! The first Ctrl-C (SIGINT or SIGTERM) stops `main`, which stops the
//! supervisor: connections say `BYE` and close, the shielded `flush`
//! writes a summary line (to `--summary`, by default a file in the temp
//! directory), `flaky-stats` stops last, and the `ShutdownReport` is
//! printed.
//!
//! `--demo` plays three clients against the service, waits for one restart
//! of `flaky-stats`, and then stops `main` itself, the way Ctrl-C does. The
//! logic is in `examples/src/supervisor_service.rs`;
//! `tests/supervisor_service.rs` checks it.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use tethered_examples::supervisor_service::{self, Config};
use tokio::net::TcpListener;

struct Args {
    demo: bool,
    addr: SocketAddr,
    summary: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        demo: false,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        summary: std::env::temp_dir().join("supervisor_service-summary.txt"),
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--demo" => args.demo = true,
            "--addr" => {
                let addr = given.next().ok_or("--addr needs an address")?;
                args.addr = addr
                    .parse()
                    .map_err(|error| format!("--addr {addr}: {error}"))?;
            }
            "--summary" => args.summary = given.next().ok_or("--summary needs a path")?.into(),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

#[tethered::main]
async fn main() -> ExitCode {
    // Restarts (INFO) and failures (WARN) of supervised children, from
    // `tethered::supervisor`, go to stderr.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();

    let args = match args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("listening on {addr} (Ctrl-C to stop)");

    if args.demo {
        let main = scope!().handle();
        spawn!("demo", supervisor_service::demo(addr, main));
    }
    let config = Config::new(args.summary);
    // Never resolves: the service stops when `main` does.
    match supervisor_service::run(listener, config, std::future::pending()).await {
        Ok(served) => {
            println!("{}", served.report);
            println!("stats: {:?}", served.stats);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            eprintln!("{}", error.report());
            ExitCode::FAILURE
        }
    }
}
