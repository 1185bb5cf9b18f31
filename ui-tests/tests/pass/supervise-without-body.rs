// Without a body, a supervisor runs until it fails, is shut down, or is
// stopped by its enclosing scope.

use tethered::{Scope, SupervisorErrorKind, supervise};

async fn boom() -> Result<(), &'static str> {
    Err("boom")
}

async fn idle() {
    tethered::stop_requested().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Fails once `boom` needs a third restart within 10 s.
    let child_line = line!() + 3;
    let error = supervise! {
        intensity: 2 within "10s",
        child "boom" (backoff none) => boom(),
    }
    .unwrap_err();
    assert_eq!(error.child(), Some("boom"));
    match error.kind() {
        SupervisorErrorKind::RestartIntensity {
            location,
            max_restarts,
            ..
        } => {
            // The child's location is where it is declared.
            assert_eq!(location.line(), child_line);
            assert!(location.file().ends_with("supervise-without-body.rs"));
            assert_eq!(*max_restarts, 2);
        }
        other => panic!("unexpected {other:?}"),
    }

    // Runs until the enclosing scope stops it.
    let outcome = Scope::run(async |scope| {
        let handle = scope.spawn(async {
            supervise! { child "idle" => idle() }.map(|supervised| supervised.value)
        });
        tokio::task::yield_now().await;
        handle.stop("done");
        handle.join().await
    })
    .await
    .unwrap();
    // The implicit body returns when the supervisor is asked to stop.
    let value = outcome.unwrap().unwrap();
    assert_eq!(value, Some(()));
}
