//! [`snapshot`]: the task tree as text that a test can compare with a
//! string, with what changes from one run to the next masked.

use crate::tree::{TaskTree, TreeEntry, tree};

/// The tree as it prints, with what changes from one run to the next left
/// out: ages, the line and column of every location (spawn lines and the
/// `.await`s tasks wait at), and the port of every socket address (a
/// connection's name). What remains (kinds, names, files, states and
/// reasons) is what a test means to check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use tethered::Scope;
/// use tethered::testing::snapshot_of;
///
/// Scope::builder()
///     .name("server")
///     .run(async |scope| {
///         let conn = scope.spawn_named("connection 127.0.0.1:53122", std::future::pending::<()>());
///         tokio::time::sleep(std::time::Duration::from_secs(3)).await;
///         assert_eq!(
///             snapshot_of("server").unwrap(),
///             "scope `server` at src/lib.rs [running]\n  \
///              task `connection 127.0.0.1:_` at src/lib.rs [running]\n"
///                 .replace("src/lib.rs", file!()),
///         );
///         conn.cancel("done");
///     })
///     .await
///     .unwrap();
/// # }
/// ```
pub fn snapshot(tree: &TaskTree) -> String {
    mask(&tree.to_string())
}

/// [`snapshot`] of the part of the live tree under its first entry named
/// `name` (the tree is the whole process's: tests that run side by side
/// each look at their own part); `None` when there is no such entry.
pub fn snapshot_of(name: &str) -> Option<String> {
    let tree = tree();
    let entry: &TreeEntry = tree.iter().find(|entry| entry.name() == Some(name))?;
    Some(mask(&entry.to_string()))
}

fn mask(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    for line in text.lines() {
        let line = match line.rfind(", age ") {
            Some(age) if line.ends_with(']') => format!("{}]", &line[..age]),
            _ => line.to_owned(),
        };
        let words: Vec<String> = line.split(' ').map(mask_word).collect();
        masked.push_str(&words.join(" "));
        masked.push('\n');
    }
    masked
}

/// One word: `src/main.rs:12:9` → `src/main.rs`, `127.0.0.1:53122` →
/// `127.0.0.1:_`; punctuation around it kept.
fn mask_word(word: &str) -> String {
    let is_edge = |c: char| matches!(c, '`' | '(' | ')' | '[' | ']' | ',' | ';');
    let start = word.len() - word.trim_start_matches(is_edge).len();
    let end = word.trim_end_matches(is_edge).len().max(start);
    let (before, core, after) = (&word[..start], &word[start..end], &word[end..]);
    let digits = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
    let parts: Vec<&str> = core.rsplitn(3, ':').collect();
    let core = match parts.as_slice() {
        // `file:line:column`
        [column, line, file] if digits(column) && digits(line) && !file.is_empty() => {
            (*file).to_owned()
        }
        // `address:port`, the address an IPv4 one
        [port, address, ..] | [port, address]
            if digits(port) && address.split('.').filter(|part| digits(part)).count() == 4 =>
        {
            let address = address.rsplit(':').next().unwrap_or(address);
            format!("{address}:_")
        }
        _ => core.to_owned(),
    };
    format!("{before}{core}{after}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_lines_columns_and_ports_are_masked() {
        let text = "scope `main` at src/main.rs:15:20 [stopping: signal: received SIGTERM (at src/main.rs:15:20), age 1.5s]\n  \
                    task `connection 127.0.0.1:53122` at src/server.rs:205:23 [running, waiting at src/db.rs:212:31 (tx.commit().await), age 300ms]\n";
        assert_eq!(
            mask(text),
            "scope `main` at src/main.rs [stopping: signal: received SIGTERM (at src/main.rs)]\n  \
             task `connection 127.0.0.1:_` at src/server.rs [running, waiting at src/db.rs (tx.commit().await)]\n"
        );
    }
}
