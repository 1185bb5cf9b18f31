//! The book's "Compile-time errors" chapter quotes the compiler: every
//! `error` line in its ```text blocks must be the first line of an error in
//! one of the trybuild `.stderr` files of `ui-tests/tests/ui`, verbatim.
//! When a message changes in the macros, the ui tests are regenerated, and
//! this test points at the chapter's stale quote.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the examples crate is in the workspace")
        .to_path_buf()
}

/// Whether `line` starts a compiler error: `error: …` or `error[E0382]: …`.
fn is_error_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("error") else {
        return false;
    };
    if rest.starts_with(": ") {
        return true;
    }
    rest.strip_prefix("[E")
        .and_then(|code| code.split_once("]: "))
        .is_some_and(|(digits, _)| digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()))
}

/// The `error` lines of the ```text blocks of a markdown file.
fn quoted_errors(markdown: &str) -> Vec<String> {
    let mut quoted = Vec::new();
    let mut in_text = false;
    let mut in_other = false;
    for line in markdown.lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_text || in_other {
                in_text = false;
                in_other = false;
            } else if info.trim() == "text" {
                in_text = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if in_text && is_error_line(trimmed) {
            quoted.push(trimmed.to_owned());
        }
    }
    quoted
}

/// Every `.stderr` file under `dir`, recursively, sorted.
fn stderr_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "stderr") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The first line of every error in every `.stderr` file, with the file it
/// came from.
fn pinned_errors(files: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut pinned = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for line in text.lines() {
            if is_error_line(line) {
                pinned.push((line.trim_end().to_owned(), file.clone()));
            }
        }
    }
    pinned
}

#[test]
fn every_error_quoted_in_the_chapter_is_pinned_by_a_ui_test() {
    let root = workspace();
    let chapter_path = root.join("book/src/compile-errors.md");
    let chapter = fs::read_to_string(&chapter_path)
        .unwrap_or_else(|e| panic!("{}: {e}", chapter_path.display()));
    let quoted = quoted_errors(&chapter);
    assert!(
        quoted.len() >= 10,
        "the chapter quotes only {} error messages in ```text blocks",
        quoted.len()
    );

    let files = stderr_files(&root.join("ui-tests/tests/ui"));
    assert!(!files.is_empty(), "no .stderr files in ui-tests/tests/ui");
    let pinned = pinned_errors(&files);

    let missing: Vec<&String> = quoted
        .iter()
        .filter(|quote| !pinned.iter().any(|(line, _)| line == *quote))
        .collect();
    assert!(
        missing.is_empty(),
        "book/src/compile-errors.md quotes errors that no ui-tests/tests/ui/**/*.stderr \
         contains (update the quote, or add the ui test):\n{}",
        missing
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Not a failure: which pinned errors the chapter does not quote, for
    // whoever extends either of them.
    let quoted: BTreeSet<&str> = quoted.iter().map(String::as_str).collect();
    let unquoted: BTreeSet<String> = pinned
        .iter()
        .filter(|(line, _)| !quoted.contains(line.as_str()))
        .map(|(line, file)| {
            let file = file.strip_prefix(&root).unwrap_or(file);
            format!("  {line}  ({})", file.display())
        })
        .collect();
    if !unquoted.is_empty() {
        println!(
            "errors pinned by ui tests but not quoted in the chapter:\n{}",
            unquoted.into_iter().collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn error_lines_are_recognized_as_the_compiler_prints_them() {
    assert!(is_error_line("error: lifetime may not live long enough"));
    assert!(is_error_line("error[E0382]: use of moved value: `handle`"));
    assert!(!is_error_line("errors: many"));
    assert!(!is_error_line("error[E38]: short code"));
    assert!(!is_error_line("warning: unused variable: `handle`"));

    let markdown = "\
```rust,compile_fail
error: inside a rust block, not a quote
```

```text
error: quoted
  --> not an error line
error[E0382]: also quoted
```
";
    assert_eq!(
        quoted_errors(markdown),
        ["error: quoted", "error[E0382]: also quoted"]
    );
}
