//! Holds no code: the ui tests live in `tests/`.
