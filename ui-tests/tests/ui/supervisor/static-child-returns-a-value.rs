// A restartable child's future returns `()` or `Result<(), E>` too.
use tethered::ChildSpec;

fn main() {
    let _ = ChildSpec::new("ingest", || async { String::from("done") });
}
