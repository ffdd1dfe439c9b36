// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! wasm-bindgen surface of the GPTQ solver (`gptq_core::gptq`).
//!
//! * `HessianAcc`: streaming `add_batch` (AutoGPTQ running average).
//! * `prepare_hessian(...) -> Prepared`: dead columns, act-order, damping and
//!   the factor `U` (`O(K³)`, once per Hessian). `Prepared.quantize_rows`
//!   runs the column loop on a row range, writing into caller slices, so two
//!   Workers can split the rows of `W`. A Worker without the factor rebuilds
//!   it with `Prepared.from_parts(u, perm, dead, ...)` from another's
//!   `u()`/`perm()`/`dead()`.
//! * `rtn_quantize`: round-to-nearest baseline into caller slices.
//!
//! Memory: a Worker that accumulates a Hessian prepares it in place
//! (`HessianAcc.prepare`, no copy of `H` leaves wasm), answers the report's
//! error sums against it (`HessianAcc.error_sums`), and ships the factor to
//! other Workers in slices (`Prepared.u_range` → `UBuffer.write` →
//! `Prepared.from_u_buffer`), so no Worker ever holds more than one extra
//! slice of `U` besides its own `K×K`.
//!
//! Errors are thrown as JS `Error`s with the solver's message.

use gptq_core::gptq as g;
use gptq_core::runtime::{matmul, Weights};
use wasm_bindgen::prelude::*;

fn err(e: g::GptqError) -> JsError {
    JsError::new(&e.to_string())
}

#[allow(clippy::too_many_arguments)]
fn config(
    bits: u32,
    group_size: i32,
    sym: bool,
    desc_act: bool,
    static_groups: bool,
    damp_percent: f32,
    damp_auto_increment: f32,
    blocksize: usize,
    mse: bool,
) -> g::GptqConfig {
    g::GptqConfig {
        bits,
        group_size,
        sym,
        desc_act,
        static_groups,
        damp_percent,
        damp_auto_increment,
        blocksize: if blocksize == 0 { 128 } else { blocksize },
        mse: if mse {
            Some(g::MseConfig::default())
        } else {
            None
        },
    }
}

/// Streaming Hessian accumulator (`K×K`, f32).
#[wasm_bindgen]
pub struct HessianAcc {
    inner: g::HessianAccumulator,
}

#[wasm_bindgen]
impl HessianAcc {
    /// A zero Hessian for `k` input features.
    #[wasm_bindgen(constructor)]
    pub fn new(k: usize) -> HessianAcc {
        HessianAcc {
            inner: g::HessianAccumulator::new(k),
        }
    }

    /// Adds `x` = `[n_seq·tokens_per_seq, K]` row-major.
    pub fn add_batch(
        &mut self,
        x: &[f32],
        n_seq: usize,
        tokens_per_seq: usize,
    ) -> Result<(), JsError> {
        self.inner.add_batch(x, n_seq, tokens_per_seq).map_err(err)
    }

    /// Sequences accumulated so far.
    #[wasm_bindgen(getter)]
    pub fn nsamples(&self) -> f64 {
        self.inner.nsamples() as f64
    }

    /// A copy of `H` (`K×K`, symmetric).
    pub fn h(&mut self) -> Vec<f32> {
        self.inner.h().to_vec()
    }

    /// Writes `H` into `out` (`K×K`).
    pub fn copy_h(&mut self, out: &mut [f32]) -> Result<(), JsError> {
        let h = self.inner.h();
        if out.len() != h.len() {
            return Err(JsError::new(&format!(
                "copy_h: out has {} values, need K·K = {}",
                out.len(),
                h.len()
            )));
        }
        out.copy_from_slice(h);
        Ok(())
    }

    /// Prepares the accumulated `H` for quantization without copying it out:
    /// the same as `prepare_hessian(acc.h(), ...)` (bit for bit), and the
    /// accumulator keeps `H` (for `error_sums`). `blocksize` 0 means 128.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &mut self,
        bits: u32,
        group_size: i32,
        sym: bool,
        desc_act: bool,
        static_groups: bool,
        damp_percent: f32,
        damp_auto_increment: f32,
        blocksize: usize,
        mse: bool,
    ) -> Result<Prepared, JsError> {
        let k = self.inner.k();
        prepare_hessian(
            self.inner.h(),
            k,
            bits,
            group_size,
            sym,
            desc_act,
            static_groups,
            damp_percent,
            damp_auto_increment,
            blocksize,
            mse,
        )
    }

    /// The report's Hessian error sums: with `Y = D·H` (`D` = `m×K`
    /// difference rows `W−Q`, the same matmul as `Kernels.matmul` with `H` as
    /// an f32 weight), returns for each of `parts` equal row blocks of `D`
    /// `Σ Y[i,j]·D[i,j]` summed in f64 in row-major order.
    pub fn error_sums(&mut self, d: &[f32], m: usize, parts: usize) -> Result<Vec<f64>, JsError> {
        let k = self.inner.k();
        if parts == 0 || !m.is_multiple_of(parts) || Some(d.len()) != m.checked_mul(k) {
            return Err(JsError::new(&format!(
                "error_sums: D has {} values for {m} rows of K = {k} in {parts} equal parts",
                d.len()
            )));
        }
        let mut y = vec![0.0f32; m * k];
        matmul(
            d,
            m,
            k,
            Weights::F32(self.inner.h()),
            None,
            0,
            k,
            &mut y,
            0,
            k,
        )
        .map_err(|e| JsError::new(&e.0))?;
        let per = m / parts * k;
        Ok(y.chunks(per.max(1))
            .zip(d.chunks(per.max(1)))
            .map(|(ys, ds)| {
                ys.iter()
                    .zip(ds)
                    .fold(0.0f64, |t, (&a, &b)| t + a as f64 * b as f64)
            })
            .collect())
    }
}

/// A `K×K` factor being received in slices from another Worker
/// (`Prepared.u_range` there), then turned into a `Prepared` by
/// `Prepared.from_u_buffer` without another copy.
#[wasm_bindgen]
pub struct UBuffer {
    data: Vec<f32>,
}

#[wasm_bindgen]
impl UBuffer {
    /// A zero buffer of `len` values.
    #[wasm_bindgen(constructor)]
    pub fn new(len: usize) -> UBuffer {
        UBuffer {
            data: vec![0.0; len],
        }
    }

    /// Copies `values` to `offset..offset + values.len()`.
    pub fn write(&mut self, offset: usize, values: &[f32]) -> Result<(), JsError> {
        let len = self.data.len();
        match self
            .data
            .get_mut(offset..offset.saturating_add(values.len()))
        {
            Some(dst) => {
                dst.copy_from_slice(values);
                Ok(())
            }
            None => Err(JsError::new(&format!(
                "UBuffer.write: {} values at {offset} exceed the buffer's {len}",
                values.len()
            ))),
        }
    }
}

/// A prepared Hessian (factor `U`, permutation, dead columns, damping).
#[wasm_bindgen]
pub struct Prepared {
    inner: g::PreparedHessian,
}

/// Prepares `h` (`K×K`) for quantization. `blocksize` 0 means 128.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn prepare_hessian(
    h: &[f32],
    k: usize,
    bits: u32,
    group_size: i32,
    sym: bool,
    desc_act: bool,
    static_groups: bool,
    damp_percent: f32,
    damp_auto_increment: f32,
    blocksize: usize,
    mse: bool,
) -> Result<Prepared, JsError> {
    let cfg = config(
        bits,
        group_size,
        sym,
        desc_act,
        static_groups,
        damp_percent,
        damp_auto_increment,
        blocksize,
        mse,
    );
    Ok(Prepared {
        inner: g::prepare_hessian(h, k, &cfg).map_err(err)?,
    })
}

#[wasm_bindgen]
impl Prepared {
    /// Rebuilds a prepared Hessian from another worker's `u()`, `perm()`, `dead()`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        u: Vec<f32>,
        perm: Vec<u32>,
        dead: Vec<u8>,
        damp_used: f32,
        k: usize,
        bits: u32,
        group_size: i32,
        sym: bool,
        desc_act: bool,
        static_groups: bool,
        blocksize: usize,
        mse: bool,
    ) -> Result<Prepared, JsError> {
        let cfg = config(
            bits,
            group_size,
            sym,
            desc_act,
            static_groups,
            damp_used,
            0.0,
            blocksize,
            mse,
        );
        let perm = perm.into_iter().map(|p| p as usize).collect();
        let dead = dead.into_iter().map(|d| d != 0).collect();
        Ok(Prepared {
            inner: g::PreparedHessian::from_parts(k, &cfg, u, perm, dead, damp_used)
                .map_err(err)?,
        })
    }

    /// `from_parts` with the factor received into `u` (consumed, not copied).
    #[allow(clippy::too_many_arguments)]
    pub fn from_u_buffer(
        u: UBuffer,
        perm: Vec<u32>,
        dead: Vec<u8>,
        damp_used: f32,
        k: usize,
        bits: u32,
        group_size: i32,
        sym: bool,
        desc_act: bool,
        static_groups: bool,
        blocksize: usize,
        mse: bool,
    ) -> Result<Prepared, JsError> {
        Prepared::from_parts(
            u.data,
            perm,
            dead,
            damp_used,
            k,
            bits,
            group_size,
            sym,
            desc_act,
            static_groups,
            blocksize,
            mse,
        )
    }

    /// `len` values of the factor `U` (row-major `K×K`) from `offset`.
    pub fn u_range(&self, offset: usize, len: usize) -> Result<Vec<f32>, JsError> {
        let u = self.inner.u();
        u.get(offset..offset.saturating_add(len))
            .map(|s| s.to_vec())
            .ok_or_else(|| {
                JsError::new(&format!(
                    "u_range: {len} values at {offset} exceed U's {}",
                    u.len()
                ))
            })
    }

    /// Input features `K`.
    #[wasm_bindgen(getter)]
    pub fn k(&self) -> usize {
        self.inner.k()
    }

    /// Groups `G`.
    #[wasm_bindgen(getter)]
    pub fn num_groups(&self) -> usize {
        self.inner.num_groups()
    }

    /// Damping fraction used (after any automatic increase).
    #[wasm_bindgen(getter)]
    pub fn damp_used(&self) -> f32 {
        self.inner.damp_used()
    }

    /// Number of dead columns.
    #[wasm_bindgen(getter)]
    pub fn dead_columns(&self) -> usize {
        self.inner.dead_columns()
    }

    /// AutoGPTQ `g_idx` (`[K]`).
    pub fn g_idx(&self) -> Vec<i32> {
        self.inner.g_idx().to_vec()
    }

    /// Processing order: `perm[i]` = original column.
    pub fn perm(&self) -> Vec<u32> {
        self.inner.perm().iter().map(|&p| p as u32).collect()
    }

    /// Dead-column flags (`[K]`, 0/1).
    pub fn dead(&self) -> Vec<u8> {
        self.inner.dead().iter().map(|&d| d as u8).collect()
    }

    /// The factor `U` (`K×K`).
    pub fn u(&self) -> Vec<f32> {
        self.inner.u().to_vec()
    }

    /// Quantizes `rows` rows (`w` = `rows×K`) into `q` (`rows×K`), `codes`
    /// (`rows×K`), `scale`/`zero` (`rows×G`); returns the loss of these rows.
    pub fn quantize_rows(
        &self,
        w: &[f32],
        rows: usize,
        q: &mut [f32],
        codes: &mut [u8],
        scale: &mut [f32],
        zero: &mut [f32],
    ) -> Result<f64, JsError> {
        g::quantize_rows_into(
            &self.inner,
            w,
            rows,
            g::RowsOut {
                q,
                codes,
                scale,
                zero,
            },
        )
        .map_err(err)
    }
}

/// Round-to-nearest baseline into caller slices (`q`, `codes`: `n×k`;
/// `scale`, `zero`: `n×G`). `g_idx` is `k / group_size`.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn rtn_quantize(
    w: &[f32],
    n: usize,
    k: usize,
    bits: u32,
    group_size: i32,
    sym: bool,
    mse: bool,
    q: &mut [f32],
    codes: &mut [u8],
    scale: &mut [f32],
    zero: &mut [f32],
) -> Result<(), JsError> {
    let cfg = config(bits, group_size, sym, false, false, 0.01, 0.0, 128, mse);
    let r = g::rtn_quantize(w, n, k, &cfg).map_err(err)?;
    if q.len() != r.q.len()
        || codes.len() != r.codes.len()
        || scale.len() != r.scale.len()
        || zero.len() != r.zero.len()
    {
        return Err(JsError::new(&format!(
            "rtn_quantize: outputs must be q/codes n·k = {}, scale/zero n·G = {}",
            r.q.len(),
            r.scale.len()
        )));
    }
    q.copy_from_slice(&r.q);
    codes.copy_from_slice(&r.codes);
    scale.copy_from_slice(&r.scale);
    zero.copy_from_slice(&r.zero);
    Ok(())
}

/// One Worker's share of `prepare` split across Workers
/// (`gptq_core::gptq::dist`): row blocks of the `K×K` factor are owned
/// round-robin, and the coordinating thread moves panels between the
/// Workers. Rank 0 also holds the plan (order, damping) and fills the whole
/// flipped Hessian, whose other rows it hands out (`rows_of_rank`). The
/// result is bit-identical to `prepare_hessian` on one Worker.
#[wasm_bindgen]
pub struct DistFactor {
    inner: g::dist::DistFactor,
    plan: Option<g::FlipPlan>,
    pivot: i64,
}

#[wasm_bindgen]
impl DistFactor {
    /// A zero `k×k` share for rank `rank` of `parts`.
    #[wasm_bindgen(constructor)]
    pub fn new(k: usize, parts: usize, rank: usize) -> Result<DistFactor, JsError> {
        if k == 0 || parts == 0 || rank >= parts {
            return Err(JsError::new(&format!(
                "DistFactor: need K > 0 and rank < parts, got K = {k}, rank {rank} of {parts}"
            )));
        }
        Ok(DistFactor {
            inner: g::dist::DistFactor::new(k, parts, rank),
            plan: None,
            pivot: -1,
        })
    }

    /// Orders `h` (`K×K`) for `cfg` and fills the whole buffer (rank 0).
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        h: &[f32],
        bits: u32,
        group_size: i32,
        sym: bool,
        desc_act: bool,
        static_groups: bool,
        damp_percent: f32,
        damp_auto_increment: f32,
        blocksize: usize,
        mse: bool,
    ) -> Result<(), JsError> {
        let cfg = config(
            bits,
            group_size,
            sym,
            desc_act,
            static_groups,
            damp_percent,
            damp_auto_increment,
            blocksize,
            mse,
        );
        let plan = g::FlipPlan::new(h, self.inner.k(), &cfg).map_err(err)?;
        plan.fill(h, self.inner.buf_mut());
        self.plan = Some(plan);
        Ok(())
    }

    /// `plan` from an accumulator's `H` (no copy of `H` leaves wasm).
    #[allow(clippy::too_many_arguments)]
    pub fn plan_acc(
        &mut self,
        acc: &mut HessianAcc,
        bits: u32,
        group_size: i32,
        sym: bool,
        desc_act: bool,
        static_groups: bool,
        damp_percent: f32,
        damp_auto_increment: f32,
        blocksize: usize,
        mse: bool,
    ) -> Result<(), JsError> {
        self.plan(
            acc.inner.h(),
            bits,
            group_size,
            sym,
            desc_act,
            static_groups,
            damp_percent,
            damp_auto_increment,
            blocksize,
            mse,
        )
    }

    /// After a failed pivot: raises the damping and refills from `h`, or
    /// throws the solver's "not positive definite" error.
    pub fn retry(&mut self, h: &[f32]) -> Result<(), JsError> {
        let plan = self
            .plan
            .as_mut()
            .ok_or_else(|| JsError::new("DistFactor.retry before plan"))?;
        plan.bump(self.pivot.max(0) as usize).map_err(err)?;
        plan.fill(h, self.inner.buf_mut());
        Ok(())
    }

    /// `retry` from an accumulator's `H`.
    pub fn retry_acc(&mut self, acc: &mut HessianAcc) -> Result<(), JsError> {
        self.retry(acc.inner.h())
    }

    /// The failed pivot of the latest `chol_diag` answering `undefined`.
    #[wasm_bindgen(getter)]
    pub fn pivot(&self) -> i64 {
        self.pivot
    }

    /// Damping fraction of the plan's latest fill (rank 0).
    #[wasm_bindgen(getter)]
    pub fn damp_used(&self) -> f32 {
        self.plan.as_ref().map_or(f32::NAN, |p| p.damp_used())
    }

    /// Processing order of the plan (rank 0).
    pub fn perm(&self) -> Vec<u32> {
        self.plan
            .as_ref()
            .map_or(Vec::new(), |p| p.perm().iter().map(|&v| v as u32).collect())
    }

    /// Dead-column flags of the plan (rank 0).
    pub fn dead(&self) -> Vec<u8> {
        self.plan
            .as_ref()
            .map_or(Vec::new(), |p| p.dead().iter().map(|&d| d as u8).collect())
    }

    /// Row blocks (= panel steps).
    #[wasm_bindgen(getter)]
    pub fn blocks(&self) -> usize {
        self.inner.blocks()
    }

    /// The rank owning row block `b`.
    pub fn owner(&self, b: usize) -> usize {
        self.inner.owner(b)
    }

    /// Factors diagonal block `s` (owner); `undefined` on a failed pivot.
    pub fn chol_diag(&mut self, s: usize) -> Option<Vec<f32>> {
        match self.inner.chol_diag(s) {
            Ok(l) => Some(l),
            Err(j) => {
                self.pivot = j as i64;
                None
            }
        }
    }

    /// Own rows of panel `s`, solved with `l11`.
    pub fn chol_panel(&mut self, s: usize, l11: &[f32]) -> Vec<f32> {
        self.inner.chol_panel(s, l11)
    }

    /// Trailing update of own rows with all ranks' panel rows (rank order).
    pub fn chol_update(&mut self, s: usize, pieces: &[f32]) {
        self.inner.chol_update(s, pieces)
    }

    /// Zeroes the upper triangle of own rows (between Cholesky and inverse).
    pub fn inv_begin(&mut self) {
        self.inner.inv_begin()
    }

    /// Own rows of column block `s` of `L`.
    pub fn inv_column(&self, s: usize) -> Vec<f32> {
        self.inner.inv_column(s)
    }

    /// Inverse step `s` with all ranks' column pieces (rank order).
    pub fn inv_step(&mut self, s: usize, pieces: &[f32]) {
        self.inner.inv_step(s, pieces)
    }

    /// Rows of blocks `b0..b1` owned by rank `owner`.
    pub fn rows_of_rank(&self, owner: usize, b0: usize, b1: usize) -> Vec<f32> {
        self.inner.rows_of_rank(owner, b0, b1)
    }

    /// Writes rank `from`'s `rows_of_rank(from, b0, b1)` into place.
    pub fn set_rows(&mut self, from: usize, b0: usize, b1: usize, rows: &[f32]) {
        self.inner.set_rows(from, b0, b1, rows)
    }

    /// The prepared Hessian, once every rank's rows are in place (consumes this).
    #[allow(clippy::too_many_arguments)]
    pub fn into_prepared(
        self,
        perm: Vec<u32>,
        dead: Vec<u8>,
        damp_used: f32,
        bits: u32,
        group_size: i32,
        sym: bool,
        desc_act: bool,
        static_groups: bool,
        blocksize: usize,
        mse: bool,
    ) -> Result<Prepared, JsError> {
        let k = self.inner.k();
        Prepared::from_parts(
            self.inner.into_upper(),
            perm,
            dead,
            damp_used,
            k,
            bits,
            group_size,
            sym,
            desc_act,
            static_groups,
            blocksize,
            mse,
        )
    }
}
