// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! CPU compute kernels of the model runtime (fp32 activations).
//!
//! Generic building blocks that a TypeScript runtime composes into Llama,
//! OPT, GPT-2 and GPT-NeoX forward passes, layer by layer:
//!
//! - [`matmul`]: `y = x · Wᵀ (+ bias)` with `W` `[N, K]` like `nn.Linear`, in
//!   f32, f16 or bf16 ([`Weights`]), converted to f32 per cache tile only.
//!   GPT-2 `Conv1D` weights (stored `[K, N]`) are transposed once at load with
//!   [`transpose`]; there is no transposed-weight kernel.
//! - [`qmatmul()`]: the same with a GPTQ-packed `W` (2/3/4/8-bit codes, f16
//!   scales, any `g_idx` order; [`QWeights`]), unpacked in registers; or,
//!   with [`ActQuant::Int8`], activations quantized to int8 per 32 values
//!   and integer dot products (llama.cpp's route; changes the numerics).
//! - [`norm`]: RMSNorm, LayerNorm.
//! - [`activation`]: residual add, SiLU·mul, ReLU, GELU (tanh and erf), softmax.
//! - [`rope`]: rotary embeddings (HF `rotate_half`, partial rotary, offsets).
//! - [`attention`]: causal attention over a KV cache, with GQA.
//! - [`ops`]: embedding lookup, strided block copies.
//! - [`peak`]: the SIMD multiply-add throughput probe benches compare against.
//!
//! All tensors are row-major f32 slices; all accumulation is f32. Shape
//! errors come back as [`KernelError`] naming the argument and the sizes.
//!
//! # Splitting work between two Workers
//!
//! [`matmul`] computes only the output columns `n0..n1` (rows of `W`). The
//! TypeScript runtime runs one wasm instance per Worker; each instance holds
//! the rows of every weight that it computes (for example rows `0..N/2` and
//! `N/2..N`: contiguous slices of an `[N, K]` tensor), so weights are never
//! duplicated. Each Worker writes its columns into its own `y` (via `y_off`
//! and `ldy`, either compactly or at their place in a full `[M, N]` buffer)
//! and the halves are exchanged with [`ops::copy_2d`]-style copies before
//! the next row-wise op. Attention heads split the same way (each Worker owns
//! the heads whose q/k/v rows it holds).

pub mod activation;
pub mod attention;
pub mod matmul;
pub mod norm;
pub mod ops;
pub mod peak;
pub mod qmatmul;
pub mod rope;
pub(crate) mod simd;

pub use matmul::{matmul, transpose, Weights};
pub use qmatmul::{qmatmul, ActQuant, QMode, QWeights, QuantTensors};

use core::fmt;

/// A kernel was called with inconsistent sizes or out-of-range indices.
///
/// The message names the argument, the size it has and the size it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

/// Fails unless `len >= need`, naming `what` in the message.
pub(crate) fn need(what: &str, len: usize, need: usize) -> Result<(), KernelError> {
    if len < need {
        Err(KernelError(format!(
            "{what}: has {len} elements, needs at least {need}"
        )))
    } else {
        Ok(())
    }
}

/// Product of `dims`, or an error naming `what` when it overflows `usize`.
pub(crate) fn size(what: &str, dims: &[usize]) -> Result<usize, KernelError> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| KernelError(format!("{what}: size {dims:?} overflows the address space")))
}

/// Fails with `msg` unless `cond` holds.
pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), KernelError> {
    if cond {
        Ok(())
    } else {
        Err(KernelError(msg()))
    }
}
