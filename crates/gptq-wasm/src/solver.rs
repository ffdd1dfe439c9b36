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
//! Errors are thrown as JS `Error`s with the solver's message.

use gptq_core::gptq as g;
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
