// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Rotary position embeddings, Hugging Face `rotate_half` convention.
//!
//! For each token `t` (position `pos0 + t`) and each head, the first
//! `rotary_dim` values of the head are rotated in pairs `(i, i + rotary_dim/2)`
//! by the angle `(pos0 + t) · inv_freq[i]` (product in f32, as HF computes
//! `inv_freq @ position_ids`); the rest (partial rotary, GPT-NeoX
//! `rotary_pct`) pass through. `inv_freq` is given by the caller so that any
//! `rope_scaling` (Llama-3, linear, dynamic…) is computed in TypeScript.

use super::{ensure, need, size, KernelError};

/// Applies RoPE in place to `x` of shape `[t, heads, head_dim]`.
///
/// # Errors
/// [`KernelError`] when `rotary_dim` is odd or exceeds `head_dim`,
/// `inv_freq` is shorter than `rotary_dim / 2`, or `x` is too short.
///
/// # Examples
/// ```
/// use gptq_core::runtime::rope::rope;
/// // one token at position 1, one head of 2 dims, angle 1 rad.
/// let mut x = [1.0f32, 0.0];
/// rope(&mut x, 1, 1, 2, 2, &[1.0], 1).unwrap();
/// assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
/// ```
pub fn rope(
    x: &mut [f32],
    t: usize,
    heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    inv_freq: &[f32],
    pos0: usize,
) -> Result<(), KernelError> {
    ensure(
        rotary_dim.is_multiple_of(2) && rotary_dim <= head_dim,
        || format!("rope: rotary_dim {rotary_dim} must be even and at most head_dim {head_dim}"),
    )?;
    let half = rotary_dim / 2;
    need("rope inv_freq", inv_freq.len(), half)?;
    need(
        "rope x [t, heads, head_dim]",
        x.len(),
        size("rope x", &[t, heads, head_dim])?,
    )?;
    if half == 0 || heads == 0 {
        return Ok(());
    }
    let mut cs = vec![0f32; 2 * half];
    for (ti, tok) in x.chunks_exact_mut(heads * head_dim).take(t).enumerate() {
        let pos = (pos0 + ti) as f32;
        let (cos, sin) = cs.split_at_mut(half);
        for i in 0..half {
            let ang = (pos * inv_freq[i]) as f64;
            cos[i] = ang.cos() as f32;
            sin[i] = ang.sin() as f32;
        }
        for head in tok.chunks_exact_mut(head_dim) {
            let (a, b) = head[..rotary_dim].split_at_mut(half);
            for i in 0..half {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos[i] - x2 * sin[i];
                b[i] = x2 * cos[i] + x1 * sin[i];
            }
        }
    }
    Ok(())
}
