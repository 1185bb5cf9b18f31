// `#[tethered::test]` with and without options accepted by the macro. Only
// the macro's own checks run here: trybuild builds without `--test`, which
// removes `#[test]` functions before type checking; `tests/entry-attribute.rs`
// type-checks and runs the same forms as real tests.
#[tethered::test]
async fn spawns_in_the_root_scope() {
    let child = spawn!(async { 1 });
    assert_eq!(child.join().await.unwrap(), 1);
}

#[tethered::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_a_result() -> Result<(), std::num::ParseIntError> {
    let parsed: u32 = "3".parse()?;
    let handle = spawn_blocking!(move || parsed * 2);
    assert_eq!(handle.join().await.unwrap(), 6);
    Ok(())
}

fn main() {}
