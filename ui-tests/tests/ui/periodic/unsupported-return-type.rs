use tethered::periodic;

#[periodic(every = "5s")]
async fn tick() -> u32 {
    1
}

fn main() {}
