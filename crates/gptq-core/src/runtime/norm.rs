// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Row-wise normalisations: RMSNorm (Llama) and LayerNorm (OPT, GPT-2,
//! GPT-NeoX). Statistics are accumulated in f32 like the fp32 reference
//! forward passes.

use super::simd::{dot, F4};
use super::{ensure, need, KernelError};

fn rows_of(what: &str, len: usize, d: usize) -> Result<usize, KernelError> {
    ensure(d > 0 && len.is_multiple_of(d), || {
        format!("{what}: length {len} is not a multiple of the row size {d}")
    })?;
    Ok(len / d)
}

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * weight`, per row of `d`
/// values. `x` and `out` have the same length, a multiple of `d`.
///
/// # Errors
/// [`KernelError`] when `weight` is shorter than `d`, `out` shorter than
/// `x`, or `x.len()` is not a multiple of `d`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::norm::rms_norm;
/// let mut out = [0f32; 2];
/// rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out).unwrap();
/// assert!((out[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-6);
/// ```
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    let d = weight.len();
    rows_of("rms_norm x", x.len(), d)?;
    need("rms_norm out", out.len(), x.len())?;
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let inv = 1.0 / (dot(xr, xr) / d as f32 + eps).sqrt();
        scale_mul(xr, inv, weight, or);
    }
    Ok(())
}

/// LayerNorm: `out = (x - mean) / sqrt(var + eps) * weight + bias` per row
/// of `d = weight.len()` values (biased variance, two passes). `bias` may be
/// empty (no bias).
///
/// # Errors
/// [`KernelError`] when `bias` is neither empty nor `d` long, `out` is
/// shorter than `x`, or `x.len()` is not a multiple of `d`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::norm::layer_norm;
/// let mut out = [0f32; 2];
/// layer_norm(&[1.0, 3.0], &[1.0, 1.0], &[0.5, 0.5], 0.0, &mut out).unwrap();
/// assert_eq!(out, [-0.5, 1.5]);
/// ```
pub fn layer_norm(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let d = weight.len();
    rows_of("layer_norm x", x.len(), d)?;
    ensure(bias.is_empty() || bias.len() == d, || {
        format!(
            "layer_norm bias: has {} elements, needs 0 or {d}",
            bias.len()
        )
    })?;
    need("layer_norm out", out.len(), x.len())?;
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let mut var = 0f32;
        for &v in xr {
            var += (v - mean) * (v - mean);
        }
        let inv = 1.0 / (var / d as f32 + eps).sqrt();
        for c in 0..d {
            let v = (xr[c] - mean) * inv * weight[c];
            or[c] = if bias.is_empty() { v } else { v + bias[c] };
        }
    }
    Ok(())
}

/// `out[c] = x[c] * s * w[c]`.
#[inline(always)]
fn scale_mul(x: &[f32], s: f32, w: &[f32], out: &mut [f32]) {
    let d = x.len();
    let sv = F4::splat(s);
    let mut c = 0;
    // SAFETY: indices < d; w and out are at least d long (checked by callers).
    unsafe {
        while c + 4 <= d {
            F4::load(x.as_ptr().add(c))
                .mul(sv)
                .mul(F4::load(w.as_ptr().add(c)))
                .store(out.as_mut_ptr().add(c));
            c += 4;
        }
    }
    while c < d {
        out[c] = x[c] * s * w[c];
        c += 1;
    }
}
