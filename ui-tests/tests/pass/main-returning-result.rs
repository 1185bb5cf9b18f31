// `#[tethered::main]` returning `Result<(), Box<dyn Error>>`: `?` works in
// the body, and the process fails with the error.
use std::error::Error;

#[tethered::main(flavor = "current_thread", grace = "1s", cancel_timeout = "2s")]
async fn main() -> Result<(), Box<dyn Error>> {
    let parsed = spawn!(async { "42".parse::<u32>() });
    let value = parsed.join().await.unwrap();
    assert_eq!(value, 42);
    let number: u32 = "7".parse()?;
    assert_eq!(number, 7);
    Ok(())
}
