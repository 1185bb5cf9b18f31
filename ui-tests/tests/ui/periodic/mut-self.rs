use tethered::periodic;

#[derive(Clone)]
struct Cache;

impl Cache {
    #[periodic(every = "5s")]
    async fn refresh(&mut self) {}
}

fn main() {}
