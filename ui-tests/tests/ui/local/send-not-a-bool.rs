// `send` takes `true` or `false`.
#[tethered::scoped(send = "no")]
async fn tally() {}

fn main() {
    let _ = tally();
}
