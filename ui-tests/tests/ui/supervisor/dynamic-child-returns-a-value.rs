// A supervised child's value has nowhere to go: it returns `()` or
// `Result<(), E>`.
use tethered::Supervisor;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = Supervisor::builder()
        .run(async |sv| {
            let _ = sv.spawn("job", async { 42u32 });
        })
        .await;
}
