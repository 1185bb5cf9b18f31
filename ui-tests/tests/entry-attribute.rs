//! `#[tethered::test]` as a real test: trybuild builds `tests/pass/*.rs`
//! without `--test`, where `#[test]` functions are removed before type
//! checking, so only this file checks that their expansion type-checks and
//! runs.

use std::time::Duration;

#[tethered::test]
async fn spawns_in_the_root_scope() {
    let child = spawn!("child", async { 1 });
    shield!(async {});
    defer!(async {});
    assert_eq!(child.join().await.unwrap(), 1);
}

#[tethered::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_a_result() -> Result<(), std::num::ParseIntError> {
    let parsed: u32 = "3".parse()?;
    let doubled = spawn_blocking!(move || parsed * 2);
    assert_eq!(doubled.join().await.unwrap(), 6);
    Ok(())
}

#[tethered::test]
async fn inner_attributes_stay_in_the_body() {
    #![allow(unused_mut)]
    let mut kept = 1;
    assert_eq!(kept, 1);
}

#[tethered::test]
async fn the_root_scope_is_named_test() {
    assert_eq!(scope!().name(), Some("test"));
    let sleeper = spawn!(tokio::time::sleep(Duration::from_millis(1)));
    sleeper.join().await.unwrap();
}
