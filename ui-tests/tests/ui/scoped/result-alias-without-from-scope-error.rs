// An alias of `Result` is recognised as one: its error type, too, must be
// able to carry a child's failure.

#[derive(Debug)]
struct ConfigError;

type Reply<T> = Result<T, ConfigError>;

#[tethered::scoped]
async fn load() -> Reply<u32> {
    spawn!(async { 1 });
    Ok(1)
}

fn main() {
    let _ = load();
}
