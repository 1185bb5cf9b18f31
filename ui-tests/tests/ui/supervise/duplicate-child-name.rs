use tethered::supervise;

async fn ingest() {}
async fn janitor() {}

async fn run() {
    let _ = supervise! {
        child "ingest" => ingest(),
        child "janitor" => janitor(),
        child "ingest" (transient) => ingest(),
    };
}

fn main() {}
