// Every way to start work in a scope, and every way to get a result back.
use std::time::Duration;

use tethered::{Outcome, Scope};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let total = Scope::builder()
        .name("basic")
        .timeout(Duration::from_secs(5))
        .run(async |scope| {
            scope.defer(async { Ok::<(), std::io::Error>(()) });
            let plain = scope.spawn(async { 1 });
            let named = scope.spawn_named("named", async { 2 });
            let fallible = scope.spawn_fallible(async { Ok::<_, String>(3) });
            let shield = scope.shield_named("shield", async { 4 });
            let mut total = 0;
            total += plain.join().await.unwrap();
            total += named.join().await.unwrap();
            if let Outcome::Completed(value) = fallible.join().await {
                total += value;
            }
            total += shield.join().await.unwrap();
            total
        })
        .await
        .unwrap();
    assert_eq!(total, 10);
}
