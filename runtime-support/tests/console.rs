//! Under `--cfg tokio_unstable`: tethered's tasks carry their names into
//! tokio's own task spans (what tokio-console shows), located at the user's
//! spawn line. Run with
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test -p tethered --test console`.
#![cfg(tokio_unstable)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tethered::{Scope, Supervisor};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

/// tokio's `runtime.spawn` spans: each task's fields.
#[derive(Clone, Default)]
struct Spawns(Arc<Mutex<Vec<FieldList>>>);

/// A span's fields, as names and values.
type FieldList = Vec<(String, String)>;

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

impl<S: Subscriber> Layer<S> for Spawns {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "runtime.spawn" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

#[test]
fn tokio_sees_each_task_by_its_name_spawned_at_the_users_line() {
    let spawns = Spawns::default();
    let subscriber = Registry::default().with(spawns.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (indexer_line, job_line) = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let mut lines = (0, 0);
            Scope::run(async |scope| {
                lines.0 = line!() + 1;
                scope.spawn_named("indexer", async {});
                Supervisor::builder()
                    .run(async |sv| {
                        lines.1 = line!() + 1;
                        sv.spawn("job-7", async {}).unwrap();
                    })
                    .await
                    .unwrap();
            })
            .await
            .unwrap();
            lines
        })
    });
    let spawns = spawns.0.lock().unwrap();
    let find = |name: &str| {
        spawns
            .iter()
            .find(|fields| field(fields, "task.name") == Some(name))
            .unwrap_or_else(|| panic!("no task `{name}` in {spawns:#?}"))
    };
    for (name, line) in [("indexer", indexer_line), ("job-7", job_line)] {
        let task = find(name);
        assert!(
            field(task, "loc.file")
                .unwrap()
                .ends_with("tests/console.rs"),
            "{task:?}"
        );
        assert_eq!(
            field(task, "loc.line"),
            Some(line.to_string().as_str()),
            "{task:?}"
        );
    }
}
