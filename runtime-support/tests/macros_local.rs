//! `spawn_local!` in `#[scoped]` fns: local children that borrow the fn's
//! arguments (owned ones included), `Send` unless `send = false`, failing
//! the fn as `spawn!` children do, mixed with spawned children.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{Log, Probe, secs};
use tethered::{CancelKind, ScopeError, scoped};
use tokio::time::sleep;

struct Doc {
    title: &'static str,
    words: Vec<&'static str>,
}

struct Index {
    stop_words: Vec<&'static str>,
}

impl Index {
    /// One local child per document, reading `self` and the document in
    /// place.
    #[scoped]
    async fn count(&self, docs: &[Doc]) -> Vec<(&'static str, usize)> {
        let handles: Vec<_> = docs
            .iter()
            .map(|doc| {
                spawn_local!(doc.title, async move {
                    sleep(secs(doc.words.len() as u64)).await;
                    let kept = doc
                        .words
                        .iter()
                        .filter(|word| !self.stop_words.contains(word));
                    (doc.title, kept.count())
                })
            })
            .collect();
        let mut counts = Vec::new();
        for handle in handles {
            counts.push(handle.join().await.unwrap());
        }
        counts
    }
}

fn docs() -> Vec<Doc> {
    vec![
        Doc {
            title: "short",
            words: vec!["the", "cat"],
        },
        Doc {
            title: "long",
            words: vec!["a", "dog", "barks", "at", "the", "moon"],
        },
    ]
}

#[tokio::test(start_paused = true)]
async fn a_scoped_method_borrows_self_and_its_arguments_and_stays_send() {
    let index = Index {
        stop_words: vec!["the", "a", "at"],
    };
    let started = tokio::time::Instant::now();
    // Spawned: the fn's future is `Send`.
    let counts = tokio::spawn(async move { index.count(&docs()).await })
        .await
        .unwrap();
    assert_eq!(counts, [("short", 1), ("long", 3)]);
    // Side by side: as long as the longest.
    assert_eq!(started.elapsed(), secs(6));
}

/// An owned argument stays where it is, in the fn's future, and the
/// children borrow it there.
#[scoped]
async fn total_length(words: Vec<String>, log: Log) -> usize {
    for word in &words {
        let log = &log;
        spawn_local!(async move {
            sleep(secs(word.len() as u64)).await;
            log.push(word.clone());
        });
    }
    words.iter().map(String::len).sum()
}

#[tokio::test(start_paused = true)]
async fn local_children_borrow_owned_arguments() {
    let log = Log::new();
    let words = vec!["ccc".to_owned(), "a".to_owned(), "bb".to_owned()];
    assert_eq!(total_length(words, log.clone()).await, 6);
    assert_eq!(log.names(), ["a", "bb", "ccc"]);
}

#[scoped(send = false)]
async fn tally(seen: Rc<RefCell<Vec<u64>>>) {
    for n in 1..=3 {
        let seen = seen.clone();
        spawn_local!(async move {
            sleep(secs(4 - n)).await;
            seen.borrow_mut().push(n);
        });
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_non_send_scoped_fn_holds_rc_in_its_local_children() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    tally(seen.clone()).await;
    assert_eq!(*seen.borrow(), [3, 2, 1]);
}

#[scoped]
async fn fails_locally(probe: Probe) -> Result<(), ScopeError> {
    spawn!("spawned", probe.hang());
    spawn_local!("checker", async {
        sleep(secs(1)).await;
        Err::<(), _>("checksum mismatch")
    });
    sleep(secs(10)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_local_child_that_returns_err_fails_the_fn_and_cancels_its_spawned_sibling() {
    let probe = Probe::new();
    let error = fails_locally(probe.clone()).await.unwrap_err();
    assert_eq!(error.failures()[0].task(), Some("checker"));
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    assert_eq!(probe.reason().kind(), CancelKind::SiblingFailed);
    assert_eq!(probe.reason().origin(), Some("checker"));
}

#[derive(Debug)]
struct Parse(&'static str);

impl From<ScopeError> for Parse {
    fn from(_: ScopeError) -> Self {
        Parse("a child failed")
    }
}

#[scoped]
async fn parse_all(inputs: &[&str]) -> Result<Vec<u32>, Parse> {
    let handles: Vec<_> = inputs
        .iter()
        .map(|input| spawn_local!(async move { input.parse::<u32>().ok() }))
        .collect();
    let mut parsed = Vec::new();
    for handle in handles {
        // `?` in the body of a local scope: its output is named.
        parsed.push(handle.join().await.unwrap().ok_or(Parse("not a number"))?);
    }
    Ok(parsed)
}

#[tokio::test(start_paused = true)]
async fn the_question_mark_works_in_a_local_scope_body() {
    assert_eq!(parse_all(&["1", "22"]).await.unwrap(), [1, 22]);
    assert_eq!(parse_all(&["1", "x"]).await.unwrap_err().0, "not a number");
}

#[tethered::test(flavor = "local", start_paused = true)]
async fn a_local_test_holds_non_send_children_in_its_root_scope() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let handles: Vec<_> = (1..=3u64)
        .map(|n| {
            let seen = seen.clone();
            spawn_local!(async move {
                sleep(secs(4 - n)).await;
                seen.borrow_mut().push(n);
            })
        })
        .collect();
    for handle in handles {
        handle.join().await.unwrap();
    }
    assert_eq!(*seen.borrow(), [3, 2, 1]);
}
