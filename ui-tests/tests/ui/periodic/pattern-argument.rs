use tethered::periodic;

#[periodic(every = "5s")]
async fn tick((a, b): (u32, u32)) {
    let _ = a + b;
}

fn main() {}
