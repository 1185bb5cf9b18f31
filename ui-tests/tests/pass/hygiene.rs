// The expansion names everything by absolute path: local items shadowing
// `core`, `std`, `tokio`, `tethered`, `Result`, `Ok`, `Box`… do not break it.
#![allow(dead_code, non_camel_case_types)]

mod shadowed {
    use ::tethered::scoped;

    mod core {}
    mod std {}
    mod tokio {}
    mod tethered {}
    type Result = ();
    type Option = ();
    struct Ok;
    struct Err;
    struct Some;
    struct None;
    struct Box;
    struct Scope;
    struct Duration;
    struct Kind;

    #[scoped(timeout = "5s", cleanup_timeout = "1s", on_exit = join)]
    pub(crate) async fn run(n: u32) -> u32 {
        defer!(async {});
        let doubled = spawn!("double", async move { n * 2 });
        shield!(async {});
        spawn_blocking!(|| ());
        doubled.join().await.unwrap()
    }

    #[scoped(name = "fallible")]
    pub(crate) async fn fallible(n: u32) -> ::core::result::Result<u32, ::tethered::ScopeError> {
        let tripled = spawn!(async move { n * 3 });
        ::core::result::Result::Ok(tripled.join().await.unwrap())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(shadowed::run(21).await, 42);
    assert_eq!(shadowed::fallible(14).await.unwrap(), 42);
}
