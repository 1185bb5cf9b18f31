//! Tracing: one span per task, one event per cancellation with its reason.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use tethered::testing::assert_cancelled;

use tethered::Scope;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

#[derive(Debug, Clone)]
struct Record {
    kind: &'static str,
    /// A span's id, and its parent's.
    id: Option<u64>,
    parent: Option<u64>,
    level: Level,
    target: String,
    name: String,
    fields: Vec<(String, String)>,
}

impl Record {
    fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Record>>>);

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = match attrs.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if attrs.is_contextual() => ctx.current_span().id().map(Id::into_u64),
            None => None,
        };
        self.0.lock().unwrap().push(Record {
            kind: "span",
            id: Some(id.into_u64()),
            parent,
            level: *attrs.metadata().level(),
            target: attrs.metadata().target().to_owned(),
            name: attrs.metadata().name().to_owned(),
            fields: fields.0,
        });
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Record {
            kind: "event",
            id: None,
            parent: None,
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            name: event.metadata().name().to_owned(),
            fields: fields.0,
        });
    }
}

/// Runs `body` on a current-thread runtime with a capturing subscriber.
fn captured(body: impl AsyncFnOnce()) -> Vec<Record> {
    let capture = Capture::default();
    let subscriber = Registry::default().with(capture.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || runtime.block_on(body()));
    capture.0.lock().unwrap().clone()
}

#[test]
fn every_task_gets_a_span_with_its_name_and_location() {
    let records = captured(async || {
        Scope::run(async |scope| {
            scope.spawn_named("indexer", async {});
            scope.shield_named("flush", async {});
        })
        .await
        .unwrap();
    });
    let spans: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "span" && r.target == "tethered::task")
        .collect();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(spans[0].name, "task");
    assert_eq!(spans[0].field("name"), Some("indexer"));
    assert!(
        spans[0]
            .field("location")
            .unwrap()
            .contains("tests/tracing.rs")
    );
    assert_eq!(spans[0].field("shielded"), Some("false"));
    assert_eq!(spans[1].field("name"), Some("flush"));
    assert_eq!(spans[1].field("shielded"), Some("true"));
}

#[test]
fn a_cancellation_is_an_event_with_the_whole_reason_chain() {
    let records = captured(async || {
        let _ = Scope::builder()
            .name("outer")
            .run(async |scope| {
                scope.spawn_named("leaf", std::future::pending::<()>());
                tokio::task::yield_now().await;
                scope.cancel("operator asked");
            })
            .await;
    });
    let cancels: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "event" && r.target == "tethered::cancel")
        .collect();

    // The cancellation that started it all is visible at info level ...
    let origin = cancels
        .iter()
        .find(|r| r.field("task") == Some("outer"))
        .expect("an event for the scope's own cancellation");
    assert_eq!(origin.level, Level::INFO);
    let reason = origin.field("reason").unwrap();
    assert!(reason.contains("cancelled: operator asked"), "{reason}");
    assert!(reason.contains("tests/tracing.rs"), "{reason}");

    // ... and what it reached is recorded at debug level with the chain.
    let leaf = cancels
        .iter()
        .find(|r| r.field("task") == Some("leaf"))
        .expect("an event for the inherited cancellation");
    assert_eq!(leaf.level, Level::DEBUG);
    let reason = leaf.field("reason").unwrap();
    assert!(reason.starts_with("parent cancelled"), "{reason}");
    assert!(
        reason.contains("caused by: cancelled: operator asked"),
        "{reason}"
    );
}

#[test]
fn a_second_cancellation_is_recorded_as_ignored() {
    let records = captured(async || {
        Scope::run(async |scope| {
            let task = scope.spawn_named("twice", std::future::pending::<()>());
            task.cancel("first");
            task.cancel("second");
            let reason = assert_cancelled!(task.join().await);
            assert_eq!(reason.message(), Some("first"));
        })
        .await
        .unwrap();
    });
    let ignored = records
        .iter()
        .find(|r| r.target == "tethered::cancel" && r.field("ignored").is_some())
        .expect("an event for the ignored cancellation");
    assert!(ignored.field("kept").unwrap().contains("first"));
    assert!(ignored.field("ignored").unwrap().contains("second"));
}

#[test]
fn a_failure_is_logged_with_the_task_name() {
    let records = captured(async || {
        let _ = Scope::run(async |scope| {
            scope.spawn_fallible_named("parser", async { Err::<(), _>("bad input") });
        })
        .await;
    });
    let failed = records
        .iter()
        .find(|r| r.target == "tethered::task" && r.kind == "event")
        .expect("a failure event");
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.field("task"), Some("parser"));
    assert!(failed.field("failure").unwrap().contains("bad input"));
}

#[test]
fn generations_count_the_starts_of_a_child_stopped_by_a_siblings_restart() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tethered::{Backoff, ChildSpec, Strategy, Supervisor};

    let records = captured(async || {
        let restarted = Arc::new(tokio::sync::Notify::new());
        let crashes = Arc::new(AtomicUsize::new(0));
        let quick = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        let crashy = {
            let restarted = restarted.clone();
            move || {
                let (restarted, crashes) = (restarted.clone(), crashes.clone());
                async move {
                    if crashes.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err("boom");
                    }
                    restarted.notify_one();
                    std::future::pending::<Result<(), &str>>().await
                }
            }
        };
        Supervisor::builder()
            .strategy(Strategy::OneForAll)
            // `steady` waits for no stop: it is cancelled after the grace.
            .grace(Duration::from_millis(5))
            .child(ChildSpec::new("steady", std::future::pending::<()>).backoff(quick))
            .child(ChildSpec::new("crashy", crashy).backoff(quick))
            .run(async |_| restarted.notified().await)
            .await
            .unwrap();
    });
    let mut restarts: Vec<_> = records
        .iter()
        .filter(|r| r.target == "tethered::supervisor")
        .filter(|r| r.field("message") == Some("restarted supervised child"))
        .map(|r| (r.field("child").unwrap(), r.field("generation").unwrap()))
        .collect();
    restarts.sort();
    // Both are in their second start: `steady` was stopped for the restart,
    // which does not count as a start of its own.
    assert_eq!(restarts, [("crashy", "2"), ("steady", "2")], "{records:#?}");
}

#[test]
fn a_supervisor_whose_shutdown_may_outlast_what_it_is_given_says_so_at_start() {
    use std::time::Duration;
    use tethered::{ChildShutdown, ChildSpec, Supervisor};

    let secs = Duration::from_secs;
    let records = captured(async || {
        // `outer` gives its static child `inner` 1 + 2 = 3 s to stop; the
        // supervisor running in it may take 5 + 10 = 15 s.
        Supervisor::builder()
            .name("outer")
            .cancel_timeout(secs(2))
            .child(
                ChildSpec::new("inner", move || async move {
                    Supervisor::builder()
                        .name("nested")
                        .grace(secs(5))
                        .cancel_timeout(secs(10))
                        .run(async |_| tethered::stop_requested().await)
                        .await
                        .map(drop)
                        .map_err(|error| error.to_string())
                })
                .shutdown(ChildShutdown::Timeout(secs(1))),
            )
            // A supervisor in the body fits in its 5 + 2 s: no warning.
            .run(async |_| {
                Supervisor::builder()
                    .name("fits")
                    .grace(secs(1))
                    .cancel_timeout(secs(1))
                    .run(async |_| tokio::task::yield_now().await)
                    .await
                    .unwrap();
            })
            .await
            .unwrap();
    });
    let warnings: Vec<_> = records
        .iter()
        .filter(|r| r.target == "tethered::supervisor" && r.level == Level::WARN)
        .filter(|r| {
            r.field("message") == Some("a supervisor's shutdown may take longer than it is given")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{records:#?}");
    let warning = warnings[0];
    assert_eq!(warning.field("supervisor"), Some("nested"));
    assert_eq!(warning.field("needed"), Some("15s"));
    assert_eq!(warning.field("allowed"), Some("3s"));
    let giver = warning.field("giver").unwrap();
    assert!(
        giver.contains("child `inner` of supervisor `outer`"),
        "{giver}"
    );
}

#[test]
fn task_spans_hang_from_their_scope_and_scope_spans_from_the_task_that_runs_them() {
    use tethered::Supervisor;

    let records = captured(async || {
        Scope::builder()
            .name("outer")
            .run(async |outer| {
                let handle = outer.handle();
                outer.spawn_named("a", async move {
                    Scope::builder()
                        .name("inner")
                        .run(async |inner| {
                            inner.spawn_named("b", async {});
                            // Spawned from `a` into `outer`: under `outer`.
                            handle.try_spawn_named("c", async {}).unwrap();
                        })
                        .await
                        .unwrap();
                });
                Supervisor::builder()
                    .name("sv")
                    .run(async |sv| {
                        sv.spawn("d", async {}).unwrap();
                    })
                    .await
                    .unwrap();
            })
            .await
            .unwrap();
    });
    let spans: Vec<&Record> = records.iter().filter(|r| r.kind == "span").collect();
    let named = |name: &str| {
        spans
            .iter()
            .find(|span| span.field("name") == Some(name))
            .unwrap_or_else(|| panic!("no span named {name}: {spans:#?}"))
    };
    let parent_of = |name: &str| {
        let parent = named(name).parent?;
        let parent = spans.iter().find(|span| span.id == Some(parent)).unwrap();
        Some(format!("{} {}", parent.name, parent.field("name").unwrap()))
    };
    assert_eq!(named("outer").name, "scope");
    assert_eq!(parent_of("outer"), None);
    assert_eq!(parent_of("a").as_deref(), Some("scope outer"));
    assert_eq!(parent_of("inner").as_deref(), Some("task a"));
    assert_eq!(parent_of("b").as_deref(), Some("scope inner"));
    assert_eq!(parent_of("c").as_deref(), Some("scope outer"));
    assert_eq!(named("sv").name, "supervisor");
    assert_eq!(parent_of("sv").as_deref(), Some("scope outer"));
    assert_eq!(parent_of("d").as_deref(), Some("supervisor sv"));
}
