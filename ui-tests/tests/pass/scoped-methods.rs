// `#[scoped]` on methods taking `&self`, `&mut self` and `self`.
use tethered::scoped;

struct Counter {
    step: u32,
    total: u32,
}

impl Counter {
    #[scoped]
    async fn next(&self) -> u32 {
        let step = self.step;
        let next = spawn!(async move { step + 1 });
        self.total + next.join().await.unwrap()
    }

    #[scoped(name = "counter-add")]
    async fn add(&mut self, times: u32) {
        for _ in 0..times {
            let step = self.step;
            self.total += spawn!(async move { step }).join().await.unwrap();
        }
    }

    #[scoped]
    async fn finish(self) -> u32 {
        let Counter { step, total } = self;
        spawn!(async move { total * step }).join().await.unwrap()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut counter = Counter { step: 2, total: 0 };
    counter.add(3).await;
    assert_eq!(counter.next().await, 9);
    assert_eq!(counter.finish().await, 12);
}
