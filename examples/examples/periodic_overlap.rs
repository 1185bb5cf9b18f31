//! What happens when a periodic job is slower than its period, under each
//! overlap policy.
//!
//! ```text
//! cargo run -p tethered-examples --example periodic_overlap
//! ```
//!
//! Four schedules tick every 200 ms, one per `Overlap` policy (`Skip`,
//! `Cancel`, `Queue`, `Concurrent(2)`), and every run takes 490 ms. After
//! 3.1 s they are stopped: each lets its runs in progress finish and returns
//! its counts, printed as a table. Ctrl-C stops them early. The logic is in
//! `examples/src/periodic_overlap.rs`; `tests/periodic_overlap.rs` runs it
//! on paused time and checks every number.

use tethered_examples::periodic_overlap;

#[tethered::main]
async fn main() -> Result<(), tethered::ScopeError> {
    let report = periodic_overlap::run().await?;
    println!("{report}");
    Ok(())
}
