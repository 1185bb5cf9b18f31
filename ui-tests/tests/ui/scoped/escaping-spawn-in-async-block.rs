// An async block in the body is part of the scope: an escaping spawn in it
// is found too.
use tethered::scoped;

async fn work() -> u32 {
    1
}

#[scoped]
async fn run() {
    let nested = async {
        tokio::spawn(work());
    };
    nested.await;
}

fn main() {}
