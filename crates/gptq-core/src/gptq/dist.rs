// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The `O(K³)` part of `prepare` split across workers that do not share
//! memory (the solver's Web Workers each own a wasm memory).
//!
//! [`inverse_upper_factor_of_flipped`](super::linalg::inverse_upper_factor_of_flipped)
//! (blocked right-looking Cholesky, then blocked triangular inverse) is
//! distributed by row blocks of [`NB_FACTOR`] rows, block `b` owned by rank
//! `b mod parts`. Per panel step a coordinator moves small pieces between
//! the ranks:
//!
//! * Cholesky step `s`: the owner of block `s` factors the diagonal block
//!   ([`DistFactor::chol_diag`]); every rank solves its own rows of the panel
//!   ([`DistFactor::chol_panel`]); the panel rows of all ranks, concatenated
//!   in rank order, go to every rank, which updates its own rows of the
//!   trailing matrix ([`DistFactor::chol_update`], the GEMM-heavy part).
//! * Inverse step `s` (descending): every rank sends its rows of column block
//!   `s` of `L` ([`DistFactor::inv_column`]); all of them, concatenated in rank
//!   order, go to every rank, which finishes its own rows of that column block
//!   of `L⁻¹` ([`DistFactor::inv_step`]).
//! * Finally every rank receives the other ranks' rows
//!   ([`DistFactor::rows_of_rank`] / [`DistFactor::set_rows`]) and
//!   [`DistFactor::into_upper`] flips the result into `U`.
//!
//! Every element is computed with the same operations in the same order as
//! the single-worker routine, so `U` is bit-identical for any `parts`.

use super::linalg::{
    factor_diag_block, gemm, solve_panel_row, tri_inv_small, BSrc, GemmScratch, Tri, NB_FACTOR,
};

const NB: usize = NB_FACTOR;

/// One rank's share of a distributed factorization (see the module docs).
#[derive(Debug)]
pub struct DistFactor {
    k: usize,
    parts: usize,
    rank: usize,
    buf: Vec<f32>,
    scratch: GemmScratch,
    tmp: Vec<f32>,
}

impl DistFactor {
    /// A zero `k×k` buffer for rank `rank` of `parts` (`rank < parts`).
    pub fn new(k: usize, parts: usize, rank: usize) -> DistFactor {
        assert!(
            k > 0 && parts > 0 && rank < parts,
            "DistFactor: k > 0 and rank < parts"
        );
        DistFactor {
            k,
            parts,
            rank,
            buf: vec![0.0; k * k],
            scratch: GemmScratch::default(),
            tmp: Vec::new(),
        }
    }

    /// Matrix size `K`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of row blocks (and panel steps).
    pub fn blocks(&self) -> usize {
        self.k.div_ceil(NB)
    }

    /// The rank owning row block `b`.
    pub fn owner(&self, b: usize) -> usize {
        b % self.parts
    }

    /// The whole `K×K` buffer (row-major); only own rows are meaningful
    /// until the final exchange.
    pub fn buf(&self) -> &[f32] {
        &self.buf
    }

    /// Mutable access to the buffer (to fill it with the flipped Hessian).
    pub fn buf_mut(&mut self) -> &mut [f32] {
        &mut self.buf
    }

    fn rows_of(&self, b: usize) -> (usize, usize) {
        (b * NB, ((b + 1) * NB).min(self.k))
    }

    /// Own row blocks `> s` (the rows below panel `s`).
    fn own_below(&self, s: usize) -> impl Iterator<Item = usize> + '_ {
        (s + 1..self.blocks()).filter(move |&b| self.owner(b) == self.rank)
    }

    /// Factors diagonal block `s` (owner only) and returns it, `kb×kb`
    /// row-major; `Err(j)` is the failing pivot (as in `cholesky_lower_inplace`).
    pub fn chol_diag(&mut self, s: usize) -> Result<Vec<f32>, usize> {
        assert_eq!(self.owner(s), self.rank, "chol_diag: block {s} is not own");
        let (k0, k1) = self.rows_of(s);
        let k = self.k;
        factor_diag_block(&mut self.buf, k, k0, k1 - k0)?;
        let kb = k1 - k0;
        let mut out = vec![0.0; kb * kb];
        for r in 0..kb {
            out[r * kb..r * kb + r + 1]
                .copy_from_slice(&self.buf[(k0 + r) * k + k0..(k0 + r) * k + k0 + r + 1]);
        }
        Ok(out)
    }

    /// Solves own rows below panel `s` with the diagonal factor `l11`
    /// (from [`Self::chol_diag`]) and returns them (`kb` values per row, own
    /// rows in ascending order).
    pub fn chol_panel(&mut self, s: usize, l11: &[f32]) -> Vec<f32> {
        let (k0, k1) = self.rows_of(s);
        let (k, kb) = (self.k, k1 - k0);
        assert_eq!(l11.len(), kb * kb, "chol_panel: L11 must be kb×kb");
        let mut out = Vec::new();
        let blocks: Vec<usize> = self.own_below(s).collect();
        for b in blocks {
            let (r0, r1) = self.rows_of(b);
            for ri in self.buf[r0 * k..r1 * k].chunks_exact_mut(k) {
                solve_panel_row(ri, l11, kb, k0, kb);
                out.extend_from_slice(&ri[k0..k1]);
            }
        }
        out
    }

    /// Puts the pieces of every rank (`parts` = their [`Self::chol_panel`] or
    /// [`Self::inv_column`] answers concatenated in rank order) into row order
    /// for the blocks `first..`, `w` values per row.
    fn interleave(&mut self, parts: &[f32], first: usize, w: usize) {
        let nb = self.blocks();
        let mut sizes = vec![0usize; self.parts];
        for b in first..nb {
            let (r0, r1) = self.rows_of(b);
            sizes[self.owner(b)] += (r1 - r0) * w;
        }
        assert_eq!(
            parts.len(),
            sizes.iter().sum::<usize>(),
            "panel pieces have the wrong size"
        );
        let mut offs = vec![0usize; self.parts];
        for r in 1..self.parts {
            offs[r] = offs[r - 1] + sizes[r - 1];
        }
        self.tmp.clear();
        for b in first..nb {
            let (r0, r1) = self.rows_of(b);
            let o = self.owner(b);
            let n = (r1 - r0) * w;
            self.tmp.extend_from_slice(&parts[offs[o]..offs[o] + n]);
            offs[o] += n;
        }
    }

    /// Trailing update of own rows after panel `s`: `A22 -= L21·L21ᵀ`, where
    /// `pieces` are all ranks' [`Self::chol_panel`] answers in rank order.
    pub fn chol_update(&mut self, s: usize, pieces: &[f32]) {
        let (k0, k1) = self.rows_of(s);
        let (k, kb) = (self.k, k1 - k0);
        self.interleave(pieces, s + 1, kb);
        let blocks: Vec<usize> = self.own_below(s).collect();
        let panel = core::mem::take(&mut self.tmp);
        for b in blocks {
            let (r0, r1) = self.rows_of(b);
            let base = self.buf.as_mut_ptr();
            // SAFETY: A = own rows r0..r1, columns k0..k1; C = the same rows,
            // columns k1..r1 (disjoint from A); B is the separate `panel`
            // buffer (rows k1..K, kb values each; rows k1..r1 are read).
            unsafe {
                gemm(
                    r1 - r0,
                    r1 - k1,
                    kb,
                    base.add(r0 * k + k0),
                    k,
                    panel.as_ptr(),
                    kb,
                    BSrc::Trans,
                    base.add(r0 * k + k1),
                    k,
                    -1.0,
                    false,
                    Tri::Full,
                    &mut self.scratch,
                );
            }
        }
        self.tmp = panel;
    }

    /// Zeroes the strictly upper triangle of own rows (after the Cholesky).
    pub fn inv_begin(&mut self) {
        let k = self.k;
        for b in 0..self.blocks() {
            if self.owner(b) == self.rank {
                let (r0, r1) = self.rows_of(b);
                for i in r0..r1 {
                    self.buf[i * k + i + 1..(i + 1) * k].fill(0.0);
                }
            }
        }
    }

    /// Own rows of column block `s` of `L` from row block `s` down (`jb`
    /// values per row, ascending), for [`Self::inv_step`].
    pub fn inv_column(&self, s: usize) -> Vec<f32> {
        let (j, j1) = self.rows_of(s);
        let k = self.k;
        let mut out = Vec::new();
        for b in s..self.blocks() {
            if self.owner(b) == self.rank {
                let (r0, r1) = self.rows_of(b);
                for i in r0..r1 {
                    out.extend_from_slice(&self.buf[i * k + j..i * k + j1]);
                }
            }
        }
        out
    }

    /// Inverse step `s` (steps run from the last block down): own rows of
    /// column block `s` of `L⁻¹`, given all ranks' [`Self::inv_column`]
    /// answers in rank order.
    pub fn inv_step(&mut self, s: usize, pieces: &[f32]) {
        let (j, j1) = self.rows_of(s);
        let (k, jb) = (self.k, j1 - j);
        self.interleave(pieces, s, jb);
        let col = core::mem::take(&mut self.tmp);
        let mut t = vec![0.0f32; jb * jb];
        tri_inv_small(&col, jb, jb, &mut t);
        let l21 = &col[jb * jb..];
        let blocks: Vec<usize> = self.own_below(s).collect();
        let mut s21 = vec![0.0f32; NB * jb];
        for b in blocks {
            let (r0, r1) = self.rows_of(b);
            let base = self.buf.as_mut_ptr();
            // SAFETY: A = X22 rows r0..r1, columns j1..r1 (own, computed in
            // earlier steps); C = the same rows, columns j..j1 (disjoint);
            // B = `l21` (rows j1..K of the column block, separate buffer).
            unsafe {
                gemm(
                    r1 - r0,
                    jb,
                    r1 - j1,
                    base.add(r0 * k + j1),
                    k,
                    l21.as_ptr(),
                    jb,
                    BSrc::RowMajor,
                    base.add(r0 * k + j),
                    k,
                    1.0,
                    true,
                    Tri::LowerAFrom(r0 - j1),
                    &mut self.scratch,
                );
            }
            for (r, dst) in s21.chunks_exact_mut(jb).take(r1 - r0).enumerate() {
                dst.copy_from_slice(&self.buf[(r0 + r) * k + j..(r0 + r) * k + j1]);
            }
            // SAFETY: s21/t are separate buffers; C as above.
            unsafe {
                gemm(
                    r1 - r0,
                    jb,
                    jb,
                    s21.as_ptr(),
                    jb,
                    t.as_ptr(),
                    jb,
                    BSrc::RowMajor,
                    base.add(r0 * k + j),
                    k,
                    -1.0,
                    true,
                    Tri::Full,
                    &mut self.scratch,
                );
            }
        }
        if self.owner(s) == self.rank {
            for r in 0..jb {
                self.buf[(j + r) * k + j..(j + r) * k + j1]
                    .copy_from_slice(&t[r * jb..r * jb + jb]);
            }
        }
        self.tmp = col;
    }

    /// Rows of the blocks `b0..b1` owned by rank `owner` (whole rows,
    /// ascending): own rows for the final exchange, or (on the rank that
    /// filled the whole buffer) another rank's rows of the filled Hessian.
    pub fn rows_of_rank(&self, owner: usize, b0: usize, b1: usize) -> Vec<f32> {
        let k = self.k;
        let mut out = Vec::new();
        for b in b0..b1.min(self.blocks()) {
            if self.owner(b) == owner {
                let (r0, r1) = self.rows_of(b);
                out.extend_from_slice(&self.buf[r0 * k..r1 * k]);
            }
        }
        out
    }

    /// Writes rank `from`'s [`Self::rows_of_rank`]`(b0, b1)` answer into place.
    pub fn set_rows(&mut self, from: usize, b0: usize, b1: usize, rows: &[f32]) {
        let k = self.k;
        let mut off = 0;
        for b in b0..b1.min(self.blocks()) {
            if self.owner(b) == from {
                let (r0, r1) = self.rows_of(b);
                let n = (r1 - r0) * k;
                self.buf[r0 * k..r1 * k].copy_from_slice(&rows[off..off + n]);
                off += n;
            }
        }
        assert_eq!(off, rows.len(), "set_rows: wrong number of values");
    }

    /// After every rank's rows are in place: `U` (`K×K`, the buffer flipped).
    pub fn into_upper(mut self) -> Vec<f32> {
        self.buf.reverse();
        self.buf
    }
}

/// Runs all ranks of a distributed factorization in this thread, in the
/// order a coordinator would: `b` is `J·A·J` as for
/// `inverse_upper_factor_of_flipped`, and the answer is bit-identical to it.
/// Meant for tests of the protocol.
pub fn factor_flipped_by_ranks(b: &[f32], k: usize, parts: usize) -> Result<Vec<f32>, usize> {
    let mut ranks: Vec<DistFactor> = (0..parts).map(|r| DistFactor::new(k, parts, r)).collect();
    for r in ranks.iter_mut() {
        r.buf_mut().copy_from_slice(&b[..k * k]);
    }
    let nb = ranks[0].blocks();
    let gather = |pieces: Vec<Vec<f32>>| pieces.concat();
    let mut l11 = ranks[0].chol_diag(0)?;
    for s in 0..nb {
        let pieces = gather(ranks.iter_mut().map(|r| r.chol_panel(s, &l11)).collect());
        for r in ranks.iter_mut() {
            r.chol_update(s, &pieces);
        }
        if s + 1 < nb {
            let o = ranks[0].owner(s + 1);
            l11 = ranks[o].chol_diag(s + 1)?;
        }
    }
    for r in ranks.iter_mut() {
        r.inv_begin();
    }
    for s in (0..nb).rev() {
        let pieces = gather(ranks.iter().map(|r| r.inv_column(s)).collect());
        for r in ranks.iter_mut() {
            r.inv_step(s, &pieces);
        }
    }
    for from in 0..parts {
        let rows = ranks[from].rows_of_rank(from, 0, nb);
        ranks[0].set_rows(from, 0, nb, &rows);
    }
    Ok(ranks.swap_remove(0).into_upper())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gptq::linalg::inverse_upper_factor_of_flipped;

    fn spd(k: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut rng = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let t = k + 3;
        let x: Vec<f32> = (0..t * k).map(|_| rng()).collect();
        let mut h = vec![0.0f32; k * k];
        for i in 0..k {
            for j in 0..k {
                h[i * k + j] = (0..t).map(|p| x[p * k + i] * x[p * k + j]).sum::<f32>()
                    + if i == j { 0.1 } else { 0.0 };
            }
        }
        h
    }

    #[test]
    fn bit_identical_for_any_parts() {
        for k in [1usize, 63, 64, 130, 300, 577] {
            let h = spd(k, 5 + k as u64);
            let mut want = h.clone();
            inverse_upper_factor_of_flipped(&mut want, k).unwrap();
            for parts in [1usize, 2, 3, 5] {
                let got = factor_flipped_by_ranks(&h, k, parts).unwrap();
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "k={k} parts={parts}");
            }
        }
    }

    #[test]
    fn reports_the_same_pivot() {
        let k = 200;
        let mut h = spd(k, 9);
        h[150 * k + 150] = -1.0;
        let mut single = h.clone();
        let want = inverse_upper_factor_of_flipped(&mut single, k).unwrap_err();
        for parts in [2usize, 3] {
            assert_eq!(factor_flipped_by_ranks(&h, k, parts).unwrap_err(), want);
        }
    }
}
