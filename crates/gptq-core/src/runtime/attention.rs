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
use super::simd::{axpy, dot, F4};
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
    if t == 1 {
        decode(q, hq, d, k_cache, v_cache, hkv, past, scale, out);
        return Ok(());
    }
    // Prefill: per KV head, the keys transposed once (`kt [d][jp]`), then
    // tiles of 4 consecutive query positions of one head: scores 4 rows ×
    // 8 keys at a time (every score one sequential f32 chain over the head
    // dimension), a softmax per row over its own causal length, and P·V
    // with each output element one sequential chain over the keys.
    let jp = total.next_multiple_of(8);
    let mut kt = vec![0f32; d * jp];
    let mut s = vec![0f32; ROWS * jp];
    for kvh in 0..hkv {
        for j in 0..total {
            let kr = &k_cache[(j * hkv + kvh) * d..(j * hkv + kvh + 1) * d];
            for (c, &v) in kr.iter().enumerate() {
                kt[c * jp + j] = v;
            }
        }
        for h in kvh * g..(kvh + 1) * g {
            let mut t0 = 0;
            while t0 < t {
                let r = ROWS.min(t - t0);
                // Row i (query t0 + i, or a copy of the last real row).
                let qrow: [&[f32]; ROWS] = core::array::from_fn(|i| {
                    let ti = t0 + i.min(r - 1);
                    &q[(ti * hq + h) * d..(ti * hq + h + 1) * d]
                });
                let lmax = past + t0 + r;
                scores(&qrow, &kt, jp, d, lmax, scale, &mut s);
                for i in 0..r {
                    let len = past + t0 + i + 1;
                    let row = &mut s[i * jp..i * jp + lmax];
                    softmax_row(&mut row[..len]);
                    row[len..].fill(0.0);
                }
                let vh = &v_cache[kvh * d..];
                pv(&s, jp, vh, hkv * d, d, lmax, r, &mut |i, c, val| {
                    out[((t0 + i) * hq + h) * d + c] = val;
                });
                t0 += r;
            }
        }
    }
    Ok(())
}

/// Query rows per prefill tile.
const ROWS: usize = 4;

/// One decode step (`t = 1`): each key row read once for every query head
/// of its group.
#[allow(clippy::too_many_arguments)]
fn decode(
    q: &[f32],
    hq: usize,
    d: usize,
    k_cache: &[f32],
    v_cache: &[f32],
    hkv: usize,
    past: usize,
    scale: f32,
    out: &mut [f32],
) {
    let g = hq / hkv;
    let (kv_stride, len) = (hkv * d, past + 1);
    let mut scores = vec![0f32; g * len];
    for kvh in 0..hkv {
        let heads = kvh * g..(kvh + 1) * g;
        for j in 0..len {
            let kr = &k_cache[j * kv_stride + kvh * d..j * kv_stride + (kvh + 1) * d];
            for (hh, h) in heads.clone().enumerate() {
                scores[hh * len + j] = dot(&q[h * d..(h + 1) * d], kr) * scale;
            }
        }
        for hh in 0..g {
            softmax_row(&mut scores[hh * len..(hh + 1) * len]);
        }
        out[heads.start * d..heads.end * d].fill(0.0);
        for j in 0..len {
            let vr = &v_cache[j * kv_stride + kvh * d..j * kv_stride + (kvh + 1) * d];
            for (hh, h) in heads.clone().enumerate() {
                axpy(scores[hh * len + j], vr, &mut out[h * d..(h + 1) * d]);
            }
        }
    }
}

/// `s[i][j] = scale · Σ_c qrow[i][c] · kt[c][j]` for `j < lmax` (rounded up
/// to 8; `kt` is zero-padded to `jp`, a multiple of 8).
fn scores(
    qrow: &[&[f32]; ROWS],
    kt: &[f32],
    jp: usize,
    d: usize,
    lmax: usize,
    scale: f32,
    s: &mut [f32],
) {
    assert!(kt.len() >= d * jp && s.len() >= ROWS * jp && lmax <= jp && jp.is_multiple_of(8));
    assert!(qrow.iter().all(|r| r.len() >= d));
    let sc = F4::splat(scale);
    for j0 in (0..lmax.next_multiple_of(8)).step_by(8) {
        let mut acc = [[F4::zero(); 2]; ROWS];
        // SAFETY: c < d and j0 + 8 <= jp, so every kt load is inside
        // `d * jp` (asserted above).
        unsafe {
            let kp = kt.as_ptr().add(j0);
            for c in 0..d {
                let k0 = F4::load(kp.add(c * jp));
                let k1 = F4::load(kp.add(c * jp + 4));
                for (i, a) in acc.iter_mut().enumerate() {
                    let x = F4::splat(*qrow[i].get_unchecked(c));
                    a[0] = a[0].fma(x, k0);
                    a[1] = a[1].fma(x, k1);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                let p = s.as_mut_ptr().add(i * jp + j0);
                a[0].mul(sc).store(p);
                a[1].mul(sc).store(p.add(4));
            }
        }
    }
}

/// `out(i, c, Σ_{j<lmax} s[i][j] · v[j·stride + c])` for rows `i < r`, each
/// sum one chain in `j` order.
#[allow(clippy::too_many_arguments)]
fn pv(
    s: &[f32],
    jp: usize,
    v: &[f32],
    stride: usize,
    d: usize,
    lmax: usize,
    r: usize,
    out: &mut impl FnMut(usize, usize, f32),
) {
    assert!(s.len() >= ROWS * jp && lmax <= jp && r <= ROWS);
    assert!(lmax == 0 || v.len() >= (lmax - 1) * stride + d);
    let mut c0 = 0;
    while c0 + 8 <= d {
        let mut acc = [[F4::zero(); 2]; ROWS];
        // SAFETY: j < lmax and c0 + 8 <= d, so v[j·stride + c0..+8] is
        // inside v (asserted above); s[i·jp + j] with i < ROWS, j < jp.
        unsafe {
            for j in 0..lmax {
                let x0 = F4::load(v.as_ptr().add(j * stride + c0));
                let x1 = F4::load(v.as_ptr().add(j * stride + c0 + 4));
                for (i, a) in acc.iter_mut().enumerate() {
                    let p = F4::splat(*s.get_unchecked(i * jp + j));
                    a[0] = a[0].fma(p, x0);
                    a[1] = a[1].fma(p, x1);
                }
            }
        }
        for (i, a) in acc.iter().enumerate().take(r) {
            put4(out, i, c0, a[0]);
            put4(out, i, c0 + 4, a[1]);
        }
        c0 += 8;
    }
    while c0 + 4 <= d {
        let mut acc = [F4::zero(); ROWS];
        // SAFETY: as above, with c0 + 4 <= d.
        unsafe {
            for j in 0..lmax {
                let x = F4::load(v.as_ptr().add(j * stride + c0));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = a.fma(F4::splat(*s.get_unchecked(i * jp + j)), x);
                }
            }
        }
        for (i, a) in acc.iter().enumerate().take(r) {
            put4(out, i, c0, *a);
        }
        c0 += 4;
    }
    for c in c0..d {
        for i in 0..r {
            let mut a = 0f32;
            for j in 0..lmax {
                a += s[i * jp + j] * v[j * stride + c];
            }
            out(i, c, a);
        }
    }
}

/// Hands the 4 lanes of `a` to `out` as columns `c0..c0 + 4` of row `i`.
fn put4(out: &mut impl FnMut(usize, usize, f32), i: usize, c0: usize, a: F4) {
    let mut t = [0f32; 4];
    // SAFETY: t holds 4 values.
    unsafe { a.store(t.as_mut_ptr()) };
    for (k, &val) in t.iter().enumerate() {
        out(i, c0 + k, val);
    }
}
