//! Holds no code: the programs live in `examples/`.
