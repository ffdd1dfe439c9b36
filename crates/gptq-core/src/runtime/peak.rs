// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! A SIMD multiply-add throughput probe: the peak that the dense GEMM is
//! measured against (`bench/dense_prefill_bench.ts`).
//!
//! [`fma_peak`] runs [`FMA_PEAK_CHAINS`] independent chains of
//! `acc = b + acc · a` on 4-lane vectors, enough to hide the latency of a
//! fused (4 cycles) or a separate multiply and add (8 cycles) at two
//! operations per cycle. It uses the same [`F4::fma`] as the kernels, so a
//! module built with `+relaxed-simd` measures `f32x4.relaxed_madd` and the
//! baseline module a `f32x4.mul` plus `f32x4.add`.

use super::simd::F4;

/// Independent accumulator chains in [`fma_peak`].
pub const FMA_PEAK_CHAINS: usize = 12;

/// Runs `iters` rounds of [`FMA_PEAK_CHAINS`] vector multiply-adds
/// (`iters · FMA_PEAK_CHAINS · 8` flops) and returns the sum of all lanes so
/// that the work cannot be optimized away. Pick `|a| < 1` to keep values
/// finite.
///
/// # Examples
/// ```
/// use gptq_core::runtime::peak::fma_peak;
/// // Every lane converges to b / (1 - a) = 2; 12 chains × 4 lanes.
/// assert!((fma_peak(10_000, 0.5, 1.0) - 96.0).abs() < 1e-3);
/// ```
pub fn fma_peak(iters: u32, a: f32, b: f32) -> f32 {
    let (av, bv) = (F4::splat(a), F4::splat(b));
    let mut acc: [F4; FMA_PEAK_CHAINS] = core::array::from_fn(|i| F4::splat(i as f32));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = bv.fma(*x, av);
        }
    }
    acc.iter().fold(F4::zero(), |s, x| s.add(*x)).hsum()
}
