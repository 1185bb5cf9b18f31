//! Fan-out with `#[scoped]`: the first failure cancels the siblings.
//!
//! ```text
//! cargo run -p tethered-examples --example scoped_fetch
//! ```
//!
//! `dashboard` fetches four services at once (one of them through a nested
//! `#[scoped]` fn with two fetches of its own). `orders` fails after 200 ms;
//! everything still running is cancelled at once, and each task prints why:
//! the reason chain, outermost first, with the source line of every link.
//! Then the error `dashboard` returned. The logic is in
//! `examples/src/scoped_fetch.rs`.

use tethered_examples::scoped_fetch;

#[tethered::main]
async fn main() {
    let report = scoped_fetch::run().await;
    println!("{report}");
}
