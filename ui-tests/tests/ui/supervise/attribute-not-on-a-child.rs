use tethered::supervise;

async fn worker() {}

async fn run() {
    let _ = supervise! {
        #[cfg(unix)]
        name: "svc",
        #[cfg(any())]
        child "metrics" => worker(),
        #[allow(unused)]
        child "worker" => worker(),
        /// Serves: a doc comment is a comment, on any entry.
        #[must_use]
        body |_| {},
    };
}

fn main() {}
