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
        #[doc = "serves"]
        body |_| {},
    };
}

fn main() {}
