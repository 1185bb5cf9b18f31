// Scopes nest in bodies (where the inner body may borrow the outer scope and
// the caller's locals) and in child tasks.
use tethered::{Scope, ScopeError};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let greeting = String::from("hello");
    let lengths = Scope::builder()
        .name("outer")
        .run(async |outer| {
            let inner = Scope::builder()
                .name("inner")
                .run(async |inner| {
                    let borrowed = greeting.len();
                    let from_outer = outer.spawn(async { 1 });
                    let from_inner = inner.spawn(async { 2 });
                    borrowed + from_outer.join().await.unwrap() + from_inner.join().await.unwrap()
                })
                .await
                .unwrap();
            // A child that runs a scope of its own, and fails if that scope fails.
            let in_child = outer.spawn_fallible(async {
                let nested: Result<usize, ScopeError> =
                    Scope::run(async |nested| nested.spawn(async { 3 }).join().await.unwrap())
                        .await;
                nested
            });
            inner + in_child.join().await.unwrap()
        })
        .await
        .unwrap();
    assert_eq!(lengths, 11);
}
