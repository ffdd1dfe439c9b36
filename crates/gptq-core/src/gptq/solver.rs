// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! AutoGPTQ's `fasterquant`, split in two:
//! [`prepare_hessian`] (dead columns, act-order, damping, `U = chol(H⁻¹)ᵀ`;
//! `O(K³)`, once per Hessian) and [`quantize_rows_into`] (the blocked column
//! loop with lazy batch updates; rows are independent, so callers may split
//! the rows of `W` between workers sharing one [`PreparedHessian`]).

use super::error::{check_finite, GptqError};
use super::linalg::{gemm, inverse_upper_factor_of_flipped, BSrc, GemmScratch, Tri};
use super::quantizer::{find_params, quantize_value, QParams};
use super::{GptqConfig, GptqResult};

/// Rows of `W` processed together (working set `ROW_TILE×K` floats).
const ROW_TILE: usize = 256;

/// A Hessian ready for quantization: the upper factor `U` of `H⁻¹` in
/// processing order, the act-order permutation, dead columns and damping.
#[derive(Clone, Debug)]
pub struct PreparedHessian {
    k: usize,
    cfg: GptqConfig,
    u: Vec<f32>,
    perm: Vec<usize>,
    dead: Vec<bool>,
    n_dead: usize,
    damp_used: f32,
    g_idx: Vec<i32>,
}

impl PreparedHessian {
    /// Input features `K`.
    pub fn k(&self) -> usize {
        self.k
    }
    /// The configuration this was prepared with.
    pub fn config(&self) -> &GptqConfig {
        &self.cfg
    }
    /// The damping fraction used (≥ `cfg.damp_percent`; larger after auto-increase).
    pub fn damp_used(&self) -> f32 {
        self.damp_used
    }
    /// Number of dead columns (`diag(H) == 0`).
    pub fn dead_columns(&self) -> usize {
        self.n_dead
    }
    /// `perm[i]` = original column processed at position `i` (identity without act-order).
    pub fn perm(&self) -> &[usize] {
        &self.perm
    }
    /// AutoGPTQ's `g_idx` (`[K]`).
    pub fn g_idx(&self) -> &[i32] {
        &self.g_idx
    }
    /// Number of groups `G`.
    pub fn num_groups(&self) -> usize {
        self.cfg.num_groups(self.k)
    }
    /// The upper factor `U` (`K×K` row-major, processing order, `H⁻¹ = UᵀU`).
    pub fn u(&self) -> &[f32] {
        &self.u
    }
    /// `dead[c]`: column `c` had `diag(H) == 0`.
    pub fn dead(&self) -> &[bool] {
        &self.dead
    }

    /// Rebuilds a prepared Hessian from its parts (e.g. `U` computed by another
    /// worker and transferred): `u` is `K×K`, `perm` a permutation of `0..K`.
    pub fn from_parts(
        k: usize,
        cfg: &GptqConfig,
        u: Vec<f32>,
        perm: Vec<usize>,
        dead: Vec<bool>,
        damp_used: f32,
    ) -> Result<PreparedHessian, GptqError> {
        cfg.validate()?;
        let mut seen = vec![false; k];
        let perm_ok = perm.len() == k
            && perm
                .iter()
                .all(|&p| p < k && !std::mem::replace(&mut seen[p], true));
        if k == 0 || u.len() != k * k || dead.len() != k || !perm_ok {
            return Err(GptqError::Shape(format!(
                "from_parts: need u of K·K = {} values, a permutation of 0..{k} and {k} dead flags; got {}, {}, {}",
                k * k,
                u.len(),
                perm.len(),
                dead.len()
            )));
        }
        let gw = cfg.group_width(k);
        let mut g_idx = vec![0i32; k];
        for (i, &c) in perm.iter().enumerate() {
            g_idx[c] = if cfg.static_groups && cfg.desc_act {
                (c / gw) as i32
            } else {
                (i / gw) as i32
            };
        }
        let n_dead = dead.iter().filter(|&&d| d).count();
        Ok(PreparedHessian {
            k,
            cfg: *cfg,
            u,
            perm,
            dead,
            n_dead,
            damp_used,
            g_idx,
        })
    }
}

/// The cheap part of `prepare`: dead columns, the act-order permutation, the
/// damping schedule, and filling the flipped, damped Hessian that
/// [`inverse_upper_factor_of_flipped`] (or [`super::dist::DistFactor`]) factors.
#[derive(Clone, Debug)]
pub struct FlipPlan {
    k: usize,
    cfg: GptqConfig,
    perm: Vec<usize>,
    dead: Vec<bool>,
    diag: Vec<f32>,
    mean: f32,
    damp_pct: f32,
    tried: Vec<f32>,
}

impl FlipPlan {
    /// Checks `h` (`K×K`) and `cfg` and orders the columns.
    pub fn new(h: &[f32], k: usize, cfg: &GptqConfig) -> Result<FlipPlan, GptqError> {
        cfg.validate()?;
        if k == 0 || h.len() != k * k {
            return Err(GptqError::Shape(format!(
                "H has {} values, expected K·K = {k}·{k} = {}; pass the Hessian of the layer's input features",
                h.len(),
                k * k
            )));
        }
        check_finite("H", h, k)?;
        let dead: Vec<bool> = (0..k).map(|i| h[i * k + i] == 0.0).collect();
        let diag: Vec<f32> = (0..k)
            .map(|i| if dead[i] { 1.0 } else { h[i * k + i] })
            .collect();
        let mut perm: Vec<usize> = (0..k).collect();
        if cfg.desc_act {
            // Stable sort, descending: ties keep ascending index order.
            perm.sort_by(|&a, &b| diag[b].partial_cmp(&diag[a]).unwrap());
        }
        let mean = (diag.iter().map(|&v| v as f64).sum::<f64>() / k as f64) as f32;
        Ok(FlipPlan {
            k,
            cfg: *cfg,
            perm,
            dead,
            diag,
            mean,
            damp_pct: cfg.damp_percent,
            tried: vec![cfg.damp_percent],
        })
    }

    /// Writes the lower triangle of `J·(H + damp·I)[perm][:, perm]·J` into
    /// `buf` (`K×K`; the strictly upper triangle is not touched).
    pub fn fill(&self, h: &[f32], buf: &mut [f32]) {
        let k = self.k;
        let damp = self.damp_pct * self.mean;
        fill_flipped(h, k, &self.perm, buf);
        for (a, &pa) in self.perm.iter().rev().enumerate() {
            buf[a * k + a] = self.diag[pa] + damp;
        }
    }

    /// After the factorization failed at pivot `j` (in `buf`'s order): raises
    /// the damping for the next [`Self::fill`], or gives up.
    pub fn bump(&mut self, j: usize) -> Result<(), GptqError> {
        let next = self.damp_pct + self.cfg.damp_auto_increment;
        if self.cfg.damp_auto_increment <= 0.0 || next >= 1.0 {
            return Err(GptqError::NotPositiveDefinite {
                damp_tried: self.tried.clone(),
                pivot: self.k - 1 - j,
            });
        }
        self.damp_pct = next;
        self.tried.push(next);
        Ok(())
    }

    /// The damping fraction of the latest [`Self::fill`].
    pub fn damp_used(&self) -> f32 {
        self.damp_pct
    }

    /// Processing order (`perm[i]` = original column).
    pub fn perm(&self) -> &[usize] {
        &self.perm
    }

    /// Dead-column flags.
    pub fn dead(&self) -> &[bool] {
        &self.dead
    }

    /// The prepared Hessian from the factor `u` of the latest fill.
    pub fn finish(self, u: Vec<f32>) -> Result<PreparedHessian, GptqError> {
        PreparedHessian::from_parts(self.k, &self.cfg, u, self.perm, self.dead, self.damp_pct)
    }
}

/// Prepares `h` (`K×K` row-major, as `add_batch` accumulated it; not modified,
/// copied once) for quantization with `cfg`: dead columns get `H[i,i] = 1`,
/// act-order sorts columns by `diag(H)` descending (stable: ties keep the lower
/// index first), `damp_percent × mean(diag H)` is added to the diagonal, and
/// `U = cholesky(cholesky_inverse(cholesky(H)), upper)` is formed. If Cholesky
/// fails, `damp_percent` is raised by `damp_auto_increment` while it stays < 1.
pub fn prepare_hessian(
    h: &[f32],
    k: usize,
    cfg: &GptqConfig,
) -> Result<PreparedHessian, GptqError> {
    let mut plan = FlipPlan::new(h, k, cfg)?;
    let mut buf = vec![0.0f32; k * k];
    loop {
        plan.fill(h, &mut buf);
        match inverse_upper_factor_of_flipped(&mut buf, k) {
            Ok(()) => return plan.finish(buf),
            Err(j) => plan.bump(j)?,
        }
    }
}

/// `buf[a][b] = Hp[K−1−b][K−1−a]` for `a ≥ b` (the lower triangle of the
/// permuted `Hp = H[perm][:, perm]`, reversed), tiled for cache.
fn fill_flipped(h: &[f32], k: usize, perm: &[usize], buf: &mut [f32]) {
    const T: usize = 32;
    for a0 in (0..k).step_by(T) {
        for b0 in (0..=a0).step_by(T) {
            for b in b0..(b0 + T).min(k) {
                let row = &h[perm[k - 1 - b] * k..perm[k - 1 - b] * k + k];
                for a in a0.max(b)..(a0 + T).min(k) {
                    buf[a * k + b] = row[perm[k - 1 - a]];
                }
            }
        }
    }
}

/// Output slices for [`quantize_rows_into`] (all for the same `rows`).
#[derive(Debug)]
pub struct RowsOut<'a> {
    /// Fake-quantized rows, `rows×K`, original column order.
    pub q: &'a mut [f32],
    /// Integer codes, `rows×K`, original column order.
    pub codes: &'a mut [u8],
    /// Scales, `rows×G`.
    pub scale: &'a mut [f32],
    /// Zero points, `rows×G`.
    pub zero: &'a mut [f32],
}

/// Runs the GPTQ column loop on `rows` rows of `W` (`w` is `rows×K`
/// row-major, original column order) and writes their results into `out`.
/// Returns AutoGPTQ's loss summed over these rows. Rows are independent, so
/// disjoint row ranges may run concurrently on one `prep`.
pub fn quantize_rows_into(
    prep: &PreparedHessian,
    w: &[f32],
    rows: usize,
    out: RowsOut<'_>,
) -> Result<f64, GptqError> {
    let k = prep.k;
    let cfg = &prep.cfg;
    let g = prep.num_groups();
    if w.len() != rows * k || out.q.len() != rows * k || out.codes.len() != rows * k {
        return Err(GptqError::Shape(format!(
            "W has {} values (q {}, codes {}), expected rows·K = {rows}·{k}; W must be [N, K] with K = the Hessian size",
            w.len(),
            out.q.len(),
            out.codes.len()
        )));
    }
    if out.scale.len() != rows * g || out.zero.len() != rows * g {
        return Err(GptqError::Shape(format!(
            "scale/zero have {}/{} values, expected rows·G = {rows}·{g}",
            out.scale.len(),
            out.zero.len()
        )));
    }
    check_finite("W", w, k)?;
    let maxq = ((1u32 << cfg.bits) - 1) as f32;
    let mse = cfg.mse.as_ref();
    let grouped = cfg.group_size > 0;
    let gw = cfg.group_width(k);
    let bs = cfg.blocksize;
    let perm = &prep.perm;
    let u = &prep.u;

    let tile = ROW_TILE.min(rows.max(1));
    let mut wt = vec![0.0f32; tile * k];
    let mut err1 = vec![0.0f32; tile * bs];
    let mut w1 = vec![0.0f32; bs];
    let mut tmp = vec![0.0f32; k];
    let mut cur = vec![
        QParams {
            scale: 1.0,
            zero: 0.0
        };
        tile
    ];
    let mut scratch = GemmScratch::default();
    let mut loss = 0.0f64;

    for r0 in (0..rows).step_by(tile) {
        let tr = tile.min(rows - r0);
        // Working copy: dead columns zeroed, columns permuted.
        for r in 0..tr {
            let src = &w[(r0 + r) * k..(r0 + r + 1) * k];
            let dst = &mut wt[r * k..(r + 1) * k];
            for (d, &c) in dst.iter_mut().zip(perm.iter()) {
                *d = if prep.dead[c] { 0.0 } else { src[c] };
            }
            let (sc, ze) = (
                &mut out.scale[(r0 + r) * g..(r0 + r + 1) * g],
                &mut out.zero[(r0 + r) * g..(r0 + r + 1) * g],
            );
            if !grouped {
                // AutoGPTQ runs find_params on the whole row before dead-column zeroing.
                let p = find_params(src, cfg.bits, cfg.sym, mse);
                cur[r] = p;
                sc[0] = p.scale;
                ze[0] = p.zero;
            } else if cfg.static_groups {
                for (c, t) in tmp.iter_mut().enumerate() {
                    *t = if prep.dead[c] { 0.0 } else { src[c] };
                }
                for gi in 0..g {
                    let p = find_params(
                        &tmp[gi * gw..((gi + 1) * gw).min(k)],
                        cfg.bits,
                        cfg.sym,
                        mse,
                    );
                    sc[gi] = p.scale;
                    ze[gi] = p.zero;
                }
            }
        }
        for i1 in (0..k).step_by(bs) {
            let i2 = (i1 + bs).min(k);
            let count = i2 - i1;
            for r in 0..tr {
                let row = &wt[r * k..(r + 1) * k];
                let orow = r0 + r;
                let qrow = &mut out.q[orow * k..(orow + 1) * k];
                let crow = &mut out.codes[orow * k..(orow + 1) * k];
                let e1 = &mut err1[r * bs..r * bs + count];
                let w1 = &mut w1[..count];
                w1.copy_from_slice(&row[i1..i2]);
                let mut p = cur[r];
                for i in 0..count {
                    let col = i1 + i;
                    if grouped {
                        if cfg.static_groups {
                            let gi = perm[col] / gw;
                            p = QParams {
                                scale: out.scale[orow * g + gi],
                                zero: out.zero[orow * g + gi],
                            };
                        } else if col % gw == 0 {
                            // Quirk kept from AutoGPTQ: reads the outer W (block-start values).
                            p = find_params(&row[col..(col + gw).min(k)], cfg.bits, cfg.sym, mse);
                            out.scale[orow * g + col / gw] = p.scale;
                            out.zero[orow * g + col / gw] = p.zero;
                        }
                    }
                    let x = w1[i];
                    let (q, code) = quantize_value(x, p, maxq);
                    qrow[perm[col]] = q;
                    crow[perm[col]] = code as u8;
                    let urow = &u[col * k + col..col * k + i2];
                    let d = urow[0];
                    let diff = x - q;
                    loss += ((diff * diff / (d * d)) / 2.0) as f64;
                    let e = diff / d;
                    e1[i] = e;
                    for (wv, &uv) in w1[i + 1..].iter_mut().zip(&urow[1..]) {
                        *wv -= e * uv;
                    }
                }
                cur[r] = p;
            }
            if i2 < k {
                // Lazy batch update: W[:, i2:] -= Err1 · U[i1:i2, i2:].
                // SAFETY: err1 (tr×count, stride bs), U and wt are distinct buffers
                // and every index stays inside them.
                unsafe {
                    gemm(
                        tr,
                        k - i2,
                        count,
                        err1.as_ptr(),
                        bs,
                        u.as_ptr().add(i1 * k + i2),
                        k,
                        BSrc::RowMajor,
                        wt.as_mut_ptr().add(i2),
                        k,
                        -1.0,
                        false,
                        Tri::Full,
                        &mut scratch,
                    );
                }
            }
        }
    }
    Ok(loss)
}

/// Quantizes all `n` rows of `w` (`n×K`) with a prepared Hessian.
pub fn quantize_with(prep: &PreparedHessian, w: &[f32], n: usize) -> Result<GptqResult, GptqError> {
    let k = prep.k;
    let g = prep.num_groups();
    if w.len() != n * k {
        return Err(GptqError::Shape(format!(
            "W has {} values, expected N·K = {n}·{k} = {}; W must be [N, K] with K = the Hessian size",
            w.len(),
            n * k
        )));
    }
    let mut q = vec![0.0f32; n * k];
    let mut codes = vec![0u8; n * k];
    let mut scale = vec![0.0f32; n * g];
    let mut zero = vec![0.0f32; n * g];
    let loss = quantize_rows_into(
        prep,
        w,
        n,
        RowsOut {
            q: &mut q,
            codes: &mut codes,
            scale: &mut scale,
            zero: &mut zero,
        },
    )?;
    Ok(GptqResult {
        q,
        codes,
        scale,
        zero,
        g_idx: prep.g_idx.clone(),
        loss,
        damp_used: prep.damp_used,
        dead_columns: prep.n_dead,
    })
}

/// GPTQ-quantizes `w` (`n×k` row-major) with Hessian `h` (`k×k`): AutoGPTQ's
/// `fasterquant` ([`prepare_hessian`] then [`quantize_with`]).
pub fn gptq_quantize(
    w: &[f32],
    n: usize,
    k: usize,
    h: &[f32],
    cfg: &GptqConfig,
) -> Result<GptqResult, GptqError> {
    if w.len() != n * k {
        return Err(GptqError::Shape(format!(
            "W has {} values, expected N·K = {n}·{k} = {}",
            w.len(),
            n * k
        )));
    }
    let prep = prepare_hessian(h, k, cfg)?;
    quantize_with(&prep, w, n)
}
