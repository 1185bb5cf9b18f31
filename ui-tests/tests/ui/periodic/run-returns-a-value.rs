// A periodic run returns `()` or `Result<(), E>`, in the plain API too.
use std::time::Duration;

use tethered::Periodic;

fn main() {
    let _ = Periodic::every(Duration::from_secs(1)).run(|| async { 1 + 1 });
}
