// `main`'s exit code comes from `()`, `ExitCode` or `Result<(), E>`.
#[tethered::main]
async fn main() -> u8 {
    0
}
