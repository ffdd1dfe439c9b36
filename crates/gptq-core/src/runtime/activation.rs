// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Element-wise activations, residual add and row softmax, all in place.

use super::simd::{exp4, F4};
use super::{ensure, need, KernelError};

/// Residual add: `dst[i] += src[i]` for `i < src.len()`.
///
/// # Errors
/// [`KernelError`] when `dst` is shorter than `src`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::add;
/// let mut h = [1.0f32, 2.0];
/// add(&mut h, &[0.5, 0.5]).unwrap();
/// assert_eq!(h, [1.5, 2.5]);
/// ```
pub fn add(dst: &mut [f32], src: &[f32]) -> Result<(), KernelError> {
    need("add dst", dst.len(), src.len())?;
    let n = src.len();
    let mut i = 0;
    // SAFETY: indices < n <= both lengths.
    unsafe {
        while i + 4 <= n {
            F4::load(dst.as_ptr().add(i))
                .add(F4::load(src.as_ptr().add(i)))
                .store(dst.as_mut_ptr().add(i));
            i += 4;
        }
    }
    while i < n {
        dst[i] += src[i];
        i += 1;
    }
    Ok(())
}

/// SwiGLU: `gate[i] = silu(gate[i]) * up[i]` with `silu(v) = v / (1 + e^-v)`.
///
/// # Errors
/// [`KernelError`] when the lengths differ.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::silu_mul;
/// let mut g = [0.0f32, 1.0];
/// silu_mul(&mut g, &[5.0, 2.0]).unwrap();
/// assert_eq!(g[0], 0.0);
/// assert!((g[1] - 2.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
/// ```
pub fn silu_mul(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    ensure(gate.len() == up.len(), || {
        format!(
            "silu_mul: gate has {} elements, up has {}",
            gate.len(),
            up.len()
        )
    })?;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
    Ok(())
}

/// SiLU in place: `x = x / (1 + e^-x)`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::silu;
/// let mut x = [0.0f32];
/// silu(&mut x);
/// assert_eq!(x, [0.0]);
/// ```
pub fn silu(x: &mut [f32]) {
    for v in x {
        *v = *v / (1.0 + (-*v).exp());
    }
}

/// ReLU in place.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::relu;
/// let mut x = [-1.0f32, 2.0];
/// relu(&mut x);
/// assert_eq!(x, [0.0, 2.0]);
/// ```
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// GELU, tanh approximation (`gelu_new` / `gelu_pytorch_tanh`, GPT-2):
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::gelu_tanh;
/// let mut x = [0.0f32, 10.0];
/// gelu_tanh(&mut x);
/// assert_eq!(x, [0.0, 10.0]);
/// ```
pub fn gelu_tanh(x: &mut [f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + (C * (u + 0.044715 * u * u * u)).tanh());
    }
}

/// Exact GELU (`gelu`, GPT-NeoX / OPT-style erf form): `0.5·x·(1 + erf(x/√2))`,
/// with [`erf`] accurate to 1.5e-7.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::gelu_erf;
/// let mut x = [0.0f32, 1.0];
/// gelu_erf(&mut x);
/// assert!((x[1] - 0.841_344_7).abs() < 1e-6);
/// ```
pub fn gelu_erf(x: &mut [f32]) {
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + erf(u * core::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `erf(x)` in f32 with absolute error below 3e-7: Maclaurin series for
/// `|x| < 0.5`, else Abramowitz & Stegun 7.1.26
/// (`1 - (a1·t + … + a5·t⁵)·e^(-x²)`, `t = 1/(1 + p·|x|)`, error 1.5e-7).
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::erf;
/// assert!((erf(1.0) - 0.842_700_8).abs() < 2e-7);
/// assert_eq!(erf(-1.0), -erf(1.0));
/// ```
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let a = x.abs();
    if a < 0.5 {
        // Maclaurin series (next term < 2e-8 here): no cancellation near 0.
        let z = x * x;
        let s =
            1.0 - z * (1.0 / 3.0 - z * (0.1 - z * (1.0 / 42.0 - z * (1.0 / 216.0 - z / 1320.0))));
        return core::f32::consts::FRAC_2_SQRT_PI * x * s;
    }
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * (-a * a).exp()).copysign(x)
}

/// Numerically stable softmax in place over each row of `n` values
/// (`x.len()` a multiple of `n`): `exp(x - max) / Σ exp(x - max)`.
///
/// # Errors
/// [`KernelError`] when `n` is zero or does not divide `x.len()`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::activation::softmax;
/// let mut x = [0.0f32, 0.0, 1000.0, 1000.0];
/// softmax(&mut x, 2).unwrap();
/// assert_eq!(x, [0.5; 4]);
/// ```
pub fn softmax(x: &mut [f32], n: usize) -> Result<(), KernelError> {
    ensure(n > 0 && x.len().is_multiple_of(n), || {
        format!(
            "softmax: length {} is not a multiple of the row size {n}",
            x.len()
        )
    })?;
    for row in x.chunks_exact_mut(n) {
        softmax_row(row);
    }
    Ok(())
}

/// Softmax of one row in place (empty rows are left alone).
#[inline]
pub(crate) fn softmax_row(row: &mut [f32]) {
    let n4 = row.len() / 4 * 4;
    let p = row.as_mut_ptr();
    let mut mx4 = F4::splat(f32::NEG_INFINITY);
    // SAFETY: every vector access covers indices < n4 <= row.len().
    unsafe {
        for i in (0..n4).step_by(4) {
            mx4 = mx4.max(F4::load(p.add(i)));
        }
    }
    let mut lanes = [0f32; 4];
    // SAFETY: lanes holds 4 values.
    unsafe { mx4.store(lanes.as_mut_ptr()) };
    let mut mx = lanes
        .iter()
        .chain(&row[n4..])
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if mx == f32::NEG_INFINITY {
        mx = 0.0;
    }
    let (m4, mut s4) = (F4::splat(mx), F4::zero());
    // SAFETY: as above.
    unsafe {
        for i in (0..n4).step_by(4) {
            let e = exp4(F4::load(p.add(i)).sub(m4));
            e.store(p.add(i));
            s4 = s4.add(e);
        }
    }
    let mut sum = s4.hsum();
    for v in row[n4..].iter_mut() {
        // The same exp as the vector lanes, for the tail too.
        let mut t = [*v - mx; 4];
        // SAFETY: t holds 4 values.
        unsafe {
            exp4(F4::load(t.as_ptr())).store(t.as_mut_ptr());
        }
        *v = t[0];
        sum += t[0];
    }
    let inv = F4::splat(1.0 / sum);
    // SAFETY: as above.
    unsafe {
        for i in (0..n4).step_by(4) {
            F4::load(p.add(i)).mul(inv).store(p.add(i));
        }
    }
    let inv = 1.0 / sum;
    for v in row[n4..].iter_mut() {
        *v *= inv;
    }
}
