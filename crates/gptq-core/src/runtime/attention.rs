// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Causal scaled-dot-product attention over a KV cache, with grouped-query
//! attention (GQA).
//!
//! Layouts: `q` and `out` are `[t, hq, d]`; the caches are `[s_max, hkv, d]`
//! and must already hold the keys/values of positions `0..past + t` (store
//! the new ones first, e.g. with [`super::ops::copy_2d`]). Query `i` sits at
//! position `past + i` and attends to positions `0..=past + i`. Query head `h`
//! reads KV head `h / (hq / hkv)`. For each KV head the key and value rows
//! are read once for all query heads of its group, which is what makes the
//! decode step (`t = 1`) bandwidth-friendly. Softmax subtracts the row
//! maximum; everything accumulates in f32.

use super::activation::softmax_row;
use super::simd::{axpy, dot};
use super::{ensure, need, size, KernelError};

/// Causal attention; see the module docs for layouts.
///
/// `scale` multiplies the scores (`1/sqrt(d)` for all supported models).
///
/// # Errors
/// [`KernelError`] when `hkv` is zero or does not divide `hq`, or a slice is
/// too short for the shapes given.
///
/// # Examples
/// ```
/// use gptq_core::runtime::attention::attention;
/// // one head of d = 2, two cached positions, decode the third.
/// let q = [1.0f32, 0.0];
/// let k = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0];
/// let v = [1.0f32, 1.0, 3.0, 3.0, 5.0, 5.0];
/// let mut out = [0f32; 2];
/// attention(&q, 1, 1, 2, &k, &v, 1, 2, 0.0, &mut out).unwrap();
/// assert_eq!(out, [3.0, 3.0]); // scale 0: a plain mean of the values
/// ```
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    t: usize,
    hq: usize,
    d: usize,
    k_cache: &[f32],
    v_cache: &[f32],
    hkv: usize,
    past: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    ensure(hkv > 0 && hq.is_multiple_of(hkv), || {
        format!("attention: {hq} query heads are not a multiple of {hkv} KV heads")
    })?;
    let qn = size("attention q [t, hq, d]", &[t, hq, d])?;
    need("attention q [t, hq, d]", q.len(), qn)?;
    need("attention out [t, hq, d]", out.len(), qn)?;
    let total = past
        .checked_add(t)
        .ok_or_else(|| KernelError("attention: past + t overflows".into()))?;
    let kvn = size("attention cache", &[total, hkv, d])?;
    need("attention k_cache [past + t, hkv, d]", k_cache.len(), kvn)?;
    need("attention v_cache [past + t, hkv, d]", v_cache.len(), kvn)?;
    if t == 0 || hq == 0 {
        return Ok(());
    }
    let g = hq / hkv;
    let kv_stride = hkv * d;
    let mut scores = vec![0f32; g * total];
    for ti in 0..t {
        let len = past + ti + 1;
        let qt = &q[ti * hq * d..(ti + 1) * hq * d];
        let ot = &mut out[ti * hq * d..(ti + 1) * hq * d];
        for kvh in 0..hkv {
            let heads = kvh * g..(kvh + 1) * g;
            for j in 0..len {
                let kr = &k_cache[j * kv_stride + kvh * d..j * kv_stride + (kvh + 1) * d];
                for (hh, h) in heads.clone().enumerate() {
                    scores[hh * total + j] = dot(&qt[h * d..(h + 1) * d], kr) * scale;
                }
            }
            for hh in 0..g {
                softmax_row(&mut scores[hh * total..hh * total + len]);
            }
            ot[heads.start * d..heads.end * d].fill(0.0);
            for j in 0..len {
                let vr = &v_cache[j * kv_stride + kvh * d..j * kv_stride + (kvh + 1) * d];
                for (hh, h) in heads.clone().enumerate() {
                    axpy(scores[hh * total + j], vr, &mut ot[h * d..(h + 1) * d]);
                }
            }
        }
    }
    Ok(())
}
