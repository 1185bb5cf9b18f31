// A `#[scoped]` fn's error type must be able to carry a child's failure.

#[derive(Debug)]
struct ConfigError;

#[tethered::scoped]
async fn load() -> Result<u32, ConfigError> {
    spawn!(async { 1 });
    Ok(1)
}

fn main() {
    let _ = load();
}
