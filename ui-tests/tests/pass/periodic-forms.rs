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

fn main() {
    let _schedule: PeriodicTask = sync(Arc::new(String::new()));
    let _method: PeriodicTask = Cache.refresh();
}
