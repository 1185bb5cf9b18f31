// Every entry of `supervise!`, in supervisors that run to their end. The
// expansion names everything by absolute path: local items shadowing
// `core`, `tethered`, `Supervisor`, `Duration`… do not break it.
#![allow(dead_code, non_camel_case_types)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
struct Flaky;

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the first start fails")
    }
}

async fn ingest(starts: Arc<AtomicU32>) -> Result<(), Flaky> {
    if starts.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(Flaky);
    }
    ::tethered::stop_requested().await;
    Ok(())
}

async fn until_stopped(_name: String) {
    ::tethered::stop_requested().await;
}

async fn once() {}

mod shadowed {
    use ::std::sync::Arc;
    use ::std::sync::atomic::{AtomicU32, Ordering};

    mod core {}
    mod std {}
    mod tokio {}
    mod tethered {}
    struct Supervisor;
    struct SupervisorBuilder;
    struct ChildSpec;
    struct Backoff;
    struct ChildShutdown;
    struct Restart;
    struct Strategy;
    struct Duration;
    type Result = ();
    type Option = ();
    struct Ok;
    struct Some;

    pub(crate) async fn run(starts: Arc<AtomicU32>) -> ::tethered::SupervisorStats {
        let name = ::std::string::String::from("janitor");
        let supervised = ::tethered::supervise! {
            name: "svc",
            strategy: one_for_one,
            intensity: 5 within "10s",
            shutdown: grace "1s" then cancel "1s",
            seed: 42,
            child "ingest" (permanent, backoff "1ms".."10ms", factor 2, jitter 0.1) => super::ingest(starts.clone()),
            child "janitor" (transient) => super::until_stopped(name.clone()),
            child "once" (temporary) => super::once(),
            child "at-once" (backoff none) => super::until_stopped(name.clone()),
            child "steep" (factor 1.5, jitter 0) => super::until_stopped(name.clone()),
            child "timed" (shutdown "1s") => super::until_stopped(name.clone()),
            child "brutal" (transient, shutdown brutal) => super::until_stopped(name.clone()),
            child "patient" (shutdown infinity, backoff none) => super::until_stopped(name.clone()),
            child "configured" (shutdown (::core::time::Duration::from_millis(500))) => super::until_stopped(name.clone()),
            #[cfg(any())]
            child "compiled-out" => super::once(),
            #[cfg(all())]
            child "compiled-in" (temporary) => super::once(),
            body |sv| {
                while starts.load(Ordering::SeqCst) < 2 {
                    ::tokio::task::yield_now().await;
                }
                sv.stats()
            },
        }
        .unwrap();
        assert_eq!(
            supervised.report.supervisor(),
            ::core::option::Option::Some("svc")
        );
        assert!(supervised.report.child("ingest").is_some());
        supervised.value.unwrap()
    }

    pub(crate) async fn typed_and_moved() -> usize {
        let owned = ::std::vec![1, 2, 3];
        // Durations known only at run time go in parentheses.
        let grace = ::core::time::Duration::from_millis(owned.len() as u64);
        let supervised = ::tethered::supervise! {
            shutdown: grace (grace * 2) then cancel (::core::time::Duration::from_secs(1)),
            body move |sv: &::tethered::Supervisor| -> usize {
                let _ = sv.name();
                owned.len()
            },
        };
        supervised.unwrap().value.unwrap()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let starts = Arc::new(AtomicU32::new(0));
    let stats = shadowed::run(starts.clone()).await;
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.restarted, 1);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(shadowed::typed_and_moved().await, 3);
}
