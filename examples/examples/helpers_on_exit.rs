//! Helper tasks that live exactly as long as the code they help.
//!
//! ```text
//! cargo run -p tethered-examples --example helpers_on_exit
//! ```
//!
//! A simulated websocket connection is a `#[scoped(on_exit = cancel)]` fn:
//! its body is the main loop, and it starts two helpers with `spawn!` (a
//! keepalive ticker and an event-bus subscriber) and a `defer!` that closes
//! the socket. When the peer sends a close frame, the main loop ends; the
//! helpers, which would run forever, are cancelled with a `ScopeExit`
//! reason, and then the cleanup closes the socket. The timeline of what
//! happened is printed, then why each helper ended. The logic is in
//! `examples/src/helpers_on_exit.rs`.

use tethered_examples::helpers_on_exit;

#[tethered::main]
async fn main() {
    let report = helpers_on_exit::run().await;
    println!("{report}");
}
