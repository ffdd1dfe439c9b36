// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Dense f32 kernels of the solver: a register-blocked, packed GEMM
//! (`C (=|+=) ±A·B`), blocked in-place Cholesky, blocked in-place inverse of a
//! lower triangle, and the upper Cholesky factor of an inverse.
//!
//! Everything is row-major. Inner loops are fixed-width (`MR×NR` accumulators,
//! no FMA contraction), so the same code auto-vectorizes to SSE/AVX natively
//! and to SIMD128 in wasm32, and gives the same bits on every target.

/// Rows of the GEMM micro-kernel.
pub const MR: usize = 4;
/// Columns of the GEMM micro-kernel (two 128-bit vectors).
pub const NR: usize = 8;
use crate::runtime::simd::F4;

const KC: usize = 256;
const NC: usize = 256;
const NB: usize = 64;

/// How the GEMM reads `B(p, j)`.
#[derive(Clone, Copy, Debug)]
pub enum BSrc {
    /// `B(p, j) = b[p·ldb + j]`.
    RowMajor,
    /// `B(p, j) = b[j·ldb + p]` (i.e. the product is `A·bᵀ`).
    Trans,
}

/// Which part of the product is needed / non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    /// Full product.
    Full,
    /// Only `C[i][j]` with `j ≤ i` is needed (tiles above the diagonal are skipped;
    /// tiles straddling it also write some upper elements).
    LowerC,
    /// `A[i][p] = 0` for `p > i` (A lower triangular): those terms are skipped.
    LowerA,
    /// `A[i][p] = 0` for `p > i + d` (rows of a lower triangle whose diagonal
    /// starts `d` columns in): those terms are skipped.
    LowerAFrom(usize),
}

/// Reusable packing buffer for [`gemm`].
#[derive(Default, Debug)]
pub struct GemmScratch {
    pack: Vec<f32>,
}

/// `C[m×n] = sign·A·B` (`overwrite`) or `C += sign·A·B`, where `A` is `m×kd`
/// (row stride `lda`), `B` is `kd×n` read as `bsrc` with stride `ldb`.
/// Per element, the `kd` products are summed in order in f32 (in chunks of 256
/// when `kd > 256`), then added to `C`.
///
/// # Safety
/// `a`, `b`, `c` must be valid for the strided regions described (they may
/// alias each other only where C's region is disjoint from A's and B's).
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize,
    n: usize,
    kd: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    bsrc: BSrc,
    c: *mut f32,
    ldc: usize,
    sign: f32,
    overwrite: bool,
    tri: Tri,
    scratch: &mut GemmScratch,
) {
    if m == 0 || n == 0 {
        return;
    }
    if kd == 0 {
        if overwrite {
            for i in 0..m {
                core::slice::from_raw_parts_mut(c.add(i * ldc), n).fill(0.0);
            }
        }
        return;
    }
    let need = KC * NC.div_ceil(NR) * NR;
    if scratch.pack.len() < need {
        scratch.pack.resize(need, 0.0);
    }
    let pack = scratch.pack.as_mut_ptr();
    let mut j0 = 0;
    while j0 < n {
        let nc = NC.min(n - j0);
        let npan = nc.div_ceil(NR);
        let rows_start = if tri == Tri::LowerC { j0.min(m) } else { 0 };
        let mut p0 = 0;
        while p0 < kd {
            let kc = KC.min(kd - p0);
            // Pack B(p0..p0+kc, j0..j0+nc) into NR-wide panels, zero-padded.
            for jp in 0..npan {
                let panel = pack.add(jp * kc * NR);
                let jbase = j0 + jp * NR;
                let w = NR.min(n - jbase);
                for p in 0..kc {
                    let dst = panel.add(p * NR);
                    for jj in 0..NR {
                        *dst.add(jj) = if jj < w {
                            match bsrc {
                                BSrc::RowMajor => *b.add((p0 + p) * ldb + jbase + jj),
                                BSrc::Trans => *b.add((jbase + jj) * ldb + p0 + p),
                            }
                        } else {
                            0.0
                        };
                    }
                }
            }
            let ow = overwrite && p0 == 0;
            let a_diag = match tri {
                Tri::LowerA => Some(0),
                Tri::LowerAFrom(d) => Some(d),
                _ => None,
            };
            let mut i = rows_start;
            while i < m {
                let mr = MR.min(m - i);
                let kc_eff = if let Some(d) = a_diag {
                    if i + d + mr <= p0 {
                        i += MR;
                        continue;
                    }
                    kc.min(i + d + mr - p0)
                } else {
                    kc
                };
                for jp in 0..npan {
                    let jbase = j0 + jp * NR;
                    if tri == Tri::LowerC && jbase > i + mr - 1 {
                        break;
                    }
                    kernel(
                        kc_eff,
                        a.add(i * lda + p0),
                        lda,
                        mr,
                        pack.add(jp * kc * NR),
                        c.add(i * ldc + jbase),
                        ldc,
                        NR.min(n - jbase),
                        sign,
                        ow,
                    );
                }
                i += MR;
            }
            p0 += kc;
        }
        j0 += nc;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    lda: usize,
    mr: usize,
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    sign: f32,
    overwrite: bool,
) {
    // Explicit f32x4 (mul, then add: never fused, so every target gives the
    // same bits); 4 rows × 2 vectors of accumulators.
    let z = F4::zero();
    let mut acc = [[z; 2]; MR];
    // Rows past `mr` re-read row 0 (valid memory); their results are dropped.
    let r1 = if mr > 1 { a.add(lda) } else { a };
    let r2 = if mr > 2 { a.add(2 * lda) } else { a };
    let r3 = if mr > 3 { a.add(3 * lda) } else { a };
    for p in 0..kc {
        let b0 = F4::load(bp.add(p * NR));
        let b1 = F4::load(bp.add(p * NR + 4));
        let av = [*a.add(p), *r1.add(p), *r2.add(p), *r3.add(p)];
        for (accr, &ar) in acc.iter_mut().zip(&av) {
            let s = F4::splat(ar);
            accr[0] = accr[0].add(s.mul(b0));
            accr[1] = accr[1].add(s.mul(b1));
        }
    }
    let sv = F4::splat(sign);
    for (r, accr) in acc.iter().enumerate().take(mr) {
        let cr = c.add(r * ldc);
        if nr == NR {
            for (h, &v) in accr.iter().enumerate() {
                let dst = cr.add(4 * h);
                let x = sv.mul(v);
                if overwrite {
                    x.store(dst);
                } else {
                    F4::load(dst).add(x).store(dst);
                }
            }
        } else {
            let mut lanes = [0.0f32; NR];
            accr[0].store(lanes.as_mut_ptr());
            accr[1].store(lanes.as_mut_ptr().add(4));
            for (j, &v) in lanes.iter().enumerate().take(nr) {
                if overwrite {
                    *cr.add(j) = sign * v;
                } else {
                    *cr.add(j) += sign * v;
                }
            }
        }
    }
}

/// Dot product with 8 f32 partial sums (vectorizable).
#[inline]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0f32; 8];
    let xc = x.chunks_exact(8);
    let yc = y.chunks_exact(8);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in xr.iter().zip(yr) {
        s += a * b;
    }
    s
}

/// Panel width of the blocked Cholesky and triangular inverse.
pub const NB_FACTOR: usize = NB;

/// Factors the diagonal block `rows/cols k0..k0+kb` of the row-major `a`
/// (stride `k`) in place (left-looking within the block).
pub(crate) fn factor_diag_block(
    a: &mut [f32],
    k: usize,
    k0: usize,
    kb: usize,
) -> Result<(), usize> {
    for j in k0..k0 + kb {
        let rowj = &mut a[j * k..j * k + k];
        let s = rowj[j] - dot(&rowj[k0..j], &rowj[k0..j]);
        if !(s > 0.0 && s.is_finite()) {
            return Err(j);
        }
        rowj[j] = s.sqrt();
        let (done, rest) = a.split_at_mut((j + 1) * k);
        let rowj = &done[j * k..];
        let d = rowj[j];
        for i in j + 1..k0 + kb {
            let ri = &mut rest[(i - j - 1) * k..(i - j) * k];
            ri[j] = (ri[j] - dot(&ri[k0..j], &rowj[k0..j])) / d;
        }
    }
    Ok(())
}

/// Forward substitution of one row below a factored diagonal block: `ri`
/// is a full row, `l11` the block's factor (row `j` at `l11[j·ld..]`).
pub(crate) fn solve_panel_row(ri: &mut [f32], l11: &[f32], ld: usize, k0: usize, kb: usize) {
    for j in 0..kb {
        let lj = &l11[j * ld..j * ld + j + 1];
        ri[k0 + j] = (ri[k0 + j] - dot(&ri[k0..k0 + j], &lj[..j])) / lj[j];
    }
}

/// In-place lower Cholesky `A = L·Lᵀ` of the `k×k` row-major `a` (reads the
/// lower triangle only; the strictly upper triangle is left as garbage).
/// Returns `Err(j)` at the first non-positive (or non-finite) pivot `j`.
pub fn cholesky_lower_inplace(
    a: &mut [f32],
    k: usize,
    scratch: &mut GemmScratch,
) -> Result<(), usize> {
    assert!(a.len() >= k * k);
    let mut k0 = 0;
    while k0 < k {
        let kb = NB.min(k - k0);
        factor_diag_block(a, k, k0, kb)?;
        // Panel: rows below the block, forward substitution row by row.
        let (top, below) = a.split_at_mut((k0 + kb) * k);
        let l11 = &top[k0 * k + k0..];
        for ri in below.chunks_exact_mut(k) {
            solve_panel_row(ri, l11, k, k0, kb);
        }
        // Trailing update A22 -= A21·A21ᵀ (lower part).
        let m = k - k0 - kb;
        if m > 0 {
            let base = a.as_mut_ptr();
            // SAFETY: A21 (columns k0..k0+kb) and A22 (columns ≥ k0+kb) of rows
            // ≥ k0+kb are disjoint; all indices stay inside k×k.
            unsafe {
                let a21 = base.add((k0 + kb) * k + k0) as *const f32;
                gemm(
                    m,
                    m,
                    kb,
                    a21,
                    k,
                    a21,
                    k,
                    BSrc::Trans,
                    base.add((k0 + kb) * k + k0 + kb),
                    k,
                    -1.0,
                    false,
                    Tri::LowerC,
                    scratch,
                );
            }
        }
        k0 += kb;
    }
    Ok(())
}

/// Zeroes the strictly upper triangle of a `k×k` row-major matrix.
pub fn zero_upper(a: &mut [f32], k: usize) {
    for (i, row) in a.chunks_exact_mut(k).enumerate().take(k) {
        row[i + 1..].fill(0.0);
    }
}

/// Inverts a small lower-triangular block (`jb×jb`, stride `k`) into `out` (`jb×jb`, dense).
pub(crate) fn tri_inv_small(a: &[f32], k: usize, jb: usize, out: &mut [f32]) {
    out[..jb * jb].fill(0.0);
    for i in 0..jb {
        let lii = a[i * k + i];
        let (prev, cur) = out.split_at_mut(i * jb);
        let row = &mut cur[..jb];
        for p in 0..i {
            let l = a[i * k + p];
            let xp = &prev[p * jb..p * jb + i];
            for (r, &x) in row[..i].iter_mut().zip(xp) {
                *r += l * x;
            }
        }
        let inv = 1.0 / lii;
        for r in row[..i].iter_mut() {
            *r *= -inv;
        }
        row[i] = inv;
    }
}

/// In-place inverse of a lower-triangular `k×k` row-major matrix whose strictly
/// upper triangle is zero (blocked, GEMM-based; `k³/6` multiply-adds).
pub fn tri_inv_lower_inplace(a: &mut [f32], k: usize, scratch: &mut GemmScratch) {
    let nblocks = k.div_ceil(NB);
    let mut t = vec![0.0f32; NB * NB];
    let mut s21: Vec<f32> = Vec::new();
    for bi in (0..nblocks).rev() {
        let j = bi * NB;
        let jb = NB.min(k - j);
        tri_inv_small(&a[j * k + j..], k, jb, &mut t);
        let m = k - j - jb;
        if m > 0 {
            s21.resize(m * jb, 0.0);
            for (r, dst) in s21.chunks_exact_mut(jb).enumerate() {
                let src = (j + jb + r) * k + j;
                dst.copy_from_slice(&a[src..src + jb]);
            }
            let base = a.as_mut_ptr();
            // SAFETY: X22 (columns ≥ j+jb) and A21 (columns j..j+jb) of rows ≥ j+jb
            // are disjoint; s21/t are separate buffers.
            unsafe {
                // A21 := X22 · L21
                gemm(
                    m,
                    jb,
                    m,
                    base.add((j + jb) * k + j + jb),
                    k,
                    s21.as_ptr(),
                    jb,
                    BSrc::RowMajor,
                    base.add((j + jb) * k + j),
                    k,
                    1.0,
                    true,
                    Tri::LowerA,
                    scratch,
                );
            }
            for (r, dst) in s21.chunks_exact_mut(jb).enumerate() {
                let src = (j + jb + r) * k + j;
                dst.copy_from_slice(&a[src..src + jb]);
            }
            // SAFETY: as above.
            unsafe {
                // A21 := −(X22·L21)·L11⁻¹
                gemm(
                    m,
                    jb,
                    jb,
                    s21.as_ptr(),
                    jb,
                    t.as_ptr(),
                    jb,
                    BSrc::RowMajor,
                    base.add((j + jb) * k + j),
                    k,
                    -1.0,
                    true,
                    Tri::Full,
                    scratch,
                );
            }
        }
        for r in 0..jb {
            a[(j + r) * k + j..(j + r) * k + j + jb].copy_from_slice(&t[r * jb..r * jb + jb]);
        }
    }
}

/// Given `b = J·A·J` (A reversed in both indices; only its lower triangle is
/// read), overwrites `b` with the upper Cholesky factor `U` of `A⁻¹`
/// (`A⁻¹ = Uᵀ·U`, strictly lower part zero) — the same `U` as torch's
/// `cholesky(cholesky_inverse(cholesky(A)), upper=True)`, in one Cholesky and
/// one triangular inverse (`k³/2` multiply-adds instead of `k³`).
///
/// Uses `U = J·L⁻¹·J` where `J·A·J = L·Lᵀ`. Returns `Err(j)` (pivot index in
/// `b`'s order) if the Cholesky fails.
pub fn inverse_upper_factor_of_flipped(b: &mut [f32], k: usize) -> Result<(), usize> {
    let mut scratch = GemmScratch::default();
    cholesky_lower_inplace(b, k, &mut scratch)?;
    zero_upper(b, k);
    tri_inv_lower_inplace(b, k, &mut scratch);
    b[..k * k].reverse();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn spd(k: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let t = k + 7;
        let x: Vec<f64> = (0..t * k).map(|_| rng(&mut s) as f64).collect();
        let mut h = vec![0.0f64; k * k];
        for i in 0..k {
            for j in 0..k {
                h[i * k + j] = (0..t).map(|p| x[p * k + i] * x[p * k + j]).sum::<f64>()
                    + if i == j { 0.5 } else { 0.0 };
            }
        }
        h
    }

    #[test]
    fn gemm_matches_naive_all_modes() {
        let (m, n, kd) = (37, 29, 300);
        let mut s = 7u64;
        let a: Vec<f32> = (0..m * kd).map(|_| rng(&mut s)).collect();
        let b: Vec<f32> = (0..kd * n).map(|_| rng(&mut s)).collect();
        let bt: Vec<f32> = (0..n * kd).map(|i| b[(i % kd) * n + i / kd]).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| rng(&mut s)).collect();
        let mut sc = GemmScratch::default();
        for (src, bb, ldb) in [(BSrc::RowMajor, &b, n), (BSrc::Trans, &bt, kd)] {
            let mut c = c0.clone();
            unsafe {
                gemm(
                    m,
                    n,
                    kd,
                    a.as_ptr(),
                    kd,
                    bb.as_ptr(),
                    ldb,
                    src,
                    c.as_mut_ptr(),
                    n,
                    -1.0,
                    false,
                    Tri::Full,
                    &mut sc,
                )
            };
            for i in 0..m {
                for j in 0..n {
                    let e: f64 = (0..kd)
                        .map(|p| a[i * kd + p] as f64 * b[p * n + j] as f64)
                        .sum();
                    assert!((c[i * n + j] as f64 - (c0[i * n + j] as f64 - e)).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn upper_factor_of_inverse() {
        for k in [1usize, 5, 64, 65, 150] {
            let h = spd(k, 11 + k as u64);
            let mut b = vec![0.0f32; k * k];
            for i in 0..k {
                for j in 0..k {
                    b[i * k + j] = h[(k - 1 - i) * k + (k - 1 - j)] as f32;
                }
            }
            inverse_upper_factor_of_flipped(&mut b, k).unwrap();
            // Check (Uᵀ U) H = I.
            let mut uu = vec![0.0f64; k * k];
            for i in 0..k {
                for j in 0..k {
                    uu[i * k + j] = (0..k)
                        .map(|p| b[p * k + i] as f64 * b[p * k + j] as f64)
                        .sum();
                }
            }
            let mut maxerr = 0.0f64;
            for i in 0..k {
                for j in 0..k {
                    let v: f64 = (0..k).map(|p| uu[i * k + p] * h[p * k + j]).sum();
                    maxerr = maxerr.max((v - if i == j { 1.0 } else { 0.0 }).abs());
                }
                for j in 0..i {
                    assert_eq!(b[i * k + j], 0.0);
                }
                assert!(b[i * k + i] > 0.0);
            }
            assert!(maxerr < 1e-3, "k={k} maxerr={maxerr}");
        }
    }

    #[test]
    fn cholesky_reports_pivot() {
        let mut a = vec![1.0f32, 0.0, 2.0, 1.0];
        // [[1,.],[2,1]] → 1 - 4 < 0 at pivot 1
        assert_eq!(
            cholesky_lower_inplace(&mut a, 2, &mut GemmScratch::default()),
            Err(1)
        );
    }
}
