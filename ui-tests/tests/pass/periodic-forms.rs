use std::sync::Arc;

use tethered::{PeriodicTask, periodic};

#[derive(Debug)]
struct Error;

#[periodic(every = "250ms", overlap = queue, missed = delay, first = after, jitter = "10ms", seed = 7, timeout = "1s", on_error = continue, name = "sync")]
async fn sync(target: Arc<String>) -> Result<(), Error> {
    let _ = target.len();
    Ok(())
}

#[derive(Clone)]
struct Cache;

impl Cache {
    #[periodic(every = "1s", overlap = cancel)]
    async fn refresh(&self) {
        let _ = self;
    }
}

// Arguments whose types are written out in the copy (`T`, a tuple) and one
// that cannot be (`impl Trait`).
#[periodic(every = "1s")]
async fn shapes<T: Clone + Send + Sync + 'static>(
    value: T,
    pair: (u32, u32),
    label: impl std::fmt::Display + Clone + Send + Sync + 'static,
) {
    let _ = (&value, pair.0 + pair.1, label.to_string());
}

fn main() {
    let _schedule: PeriodicTask = sync(Arc::new(String::new()));
    let _method: PeriodicTask = Cache.refresh();
    let _shapes: PeriodicTask = shapes(1u8, (1, 2), "label");
}
