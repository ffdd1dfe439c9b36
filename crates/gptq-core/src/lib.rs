//! Portable GPTQ kernels shared by every CPU target (wasm32 with SIMD128 and
//! native builds used by `cargo test`). No I/O lives here.
pub mod dtype;
pub mod gptq;
pub mod pack;
pub mod runtime;
