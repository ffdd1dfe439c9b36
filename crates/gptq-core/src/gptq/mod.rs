// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The GPTQ solver, matching AutoGPTQ's `gptq.py` / `quantizer.py` numerically.
//!
//! * [`HessianAccumulator`]: AutoGPTQ's `add_batch` running average
//!   (`H = 2/n_seq Σ x xᵀ`, `n` counting sequences, not tokens).
//! * [`prepare_hessian`]: dead columns, act-order permutation, damping (with
//!   optional automatic increase) and the upper Cholesky factor `U` of `H⁻¹`,
//!   computed once, `O(K³)`.
//! * [`quantize_with`] / [`quantize_rows_into`]: the blocked column loop with
//!   lazy batch updates; rows are independent given `U`, so two workers can
//!   split the rows of `W` and share one [`PreparedHessian`].
//! * [`gptq_quantize`]: both steps in one call; [`rtn_quantize`]: the
//!   round-to-nearest baseline with the same quantizer and group layout.
//!
//! ```
//! use gptq_core::gptq::{gptq_quantize, GptqConfig, HessianAccumulator};
//! let (n, k) = (4, 8);
//! let w: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.1).collect();
//! let x: Vec<f32> = (0..16 * k).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
//! let mut acc = HessianAccumulator::new(k);
//! acc.add_batch(&x, 1, 16).unwrap();
//! let cfg = GptqConfig { bits: 4, group_size: -1, ..GptqConfig::default() };
//! let r = gptq_quantize(&w, n, k, acc.h(), &cfg).unwrap();
//! assert_eq!(r.q.len(), n * k);
//! ```

pub mod dist;
mod error;
mod hessian;
pub mod linalg;
mod quantizer;
mod rtn;
mod solver;

pub use error::GptqError;
pub use hessian::HessianAccumulator;
pub use quantizer::{find_params, quantize_value, QParams};
pub use rtn::rtn_quantize;
pub use solver::{
    gptq_quantize, prepare_hessian, quantize_rows_into, quantize_with, FlipPlan, PreparedHessian,
    RowsOut,
};

/// MSE grid search for the quantizer range (AutoGPTQ `quantizer.configure(mse=True)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MseConfig {
    /// Error norm `p` in `Σ|Q(x) − x|^p` (AutoGPTQ: 2.4).
    pub norm: f32,
    /// Grid resolution (AutoGPTQ: 100).
    pub grid: u32,
    /// Largest shrink of the range (AutoGPTQ: 0.8, i.e. 80 steps).
    pub maxshrink: f32,
}

impl Default for MseConfig {
    fn default() -> Self {
        MseConfig {
            norm: 2.4,
            grid: 100,
            maxshrink: 0.8,
        }
    }
}

/// Solver settings (AutoGPTQ `BaseQuantizeConfig` + GPTQModel's `damp_auto_increment`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptqConfig {
    /// Bits per weight: 2, 3, 4 or 8.
    pub bits: u32,
    /// Columns per group; `-1` = one group per row.
    pub group_size: i32,
    /// Symmetric grid (zero = 2^(bits-1)).
    pub sym: bool,
    /// Act-order: process columns by descending `diag(H)`.
    pub desc_act: bool,
    /// Compute group parameters up front on the unpermuted weight.
    pub static_groups: bool,
    /// Relative damping added to `diag(H)`: `damp_percent × mean(diag H)`.
    pub damp_percent: f32,
    /// On Cholesky failure, raise `damp_percent` by this much and retry (while < 1); 0 disables.
    pub damp_auto_increment: f32,
    /// Columns per block of the lazy batch update (AutoGPTQ: 128).
    pub blocksize: usize,
    /// MSE range search; `None` = plain min-max (AutoGPTQ's default).
    pub mse: Option<MseConfig>,
}

impl Default for GptqConfig {
    fn default() -> Self {
        GptqConfig {
            bits: 4,
            group_size: 128,
            sym: true,
            desc_act: false,
            static_groups: false,
            damp_percent: 0.01,
            damp_auto_increment: 0.0025,
            blocksize: 128,
            mse: None,
        }
    }
}

impl GptqConfig {
    /// Number of groups `G` for `k` input columns.
    pub fn num_groups(&self, k: usize) -> usize {
        if self.group_size <= 0 {
            1
        } else {
            k.div_ceil(self.group_size as usize)
        }
    }

    /// Effective group width for `k` columns (`k` when `group_size == -1`).
    pub fn group_width(&self, k: usize) -> usize {
        if self.group_size <= 0 {
            k.max(1)
        } else {
            self.group_size as usize
        }
    }

    pub(crate) fn validate(&self) -> Result<(), GptqError> {
        if !matches!(self.bits, 2 | 3 | 4 | 8) {
            return Err(GptqError::Config(format!(
                "bits = {} is not supported; use 2, 3, 4 or 8",
                self.bits
            )));
        }
        if self.group_size == 0 || self.group_size < -1 {
            return Err(GptqError::Config(format!(
                "group_size = {} is invalid; use -1 (per row) or a positive column count such as 128",
                self.group_size
            )));
        }
        if !(self.damp_percent.is_finite() && self.damp_percent >= 0.0 && self.damp_percent < 1.0) {
            return Err(GptqError::Config(format!(
                "damp_percent = {} must be in [0, 1) (AutoGPTQ default 0.01)",
                self.damp_percent
            )));
        }
        if !(self.damp_auto_increment.is_finite() && self.damp_auto_increment >= 0.0) {
            return Err(GptqError::Config(format!(
                "damp_auto_increment = {} must be >= 0 (0 disables; GPTQModel default 0.0025)",
                self.damp_auto_increment
            )));
        }
        if self.blocksize == 0 {
            return Err(GptqError::Config(
                "blocksize must be > 0 (AutoGPTQ uses 128)".into(),
            ));
        }
        if let Some(m) = self.mse {
            if !(m.norm > 0.0 && m.grid > 0 && m.maxshrink > 0.0 && m.maxshrink <= 1.0) {
                return Err(GptqError::Config(format!(
                    "mse = {m:?} is invalid; use norm > 0, grid > 0, 0 < maxshrink <= 1 (2.4, 100, 0.8)"
                )));
            }
        }
        Ok(())
    }
}

/// Output of [`gptq_quantize`] / [`rtn_quantize`].
#[derive(Clone, Debug, PartialEq)]
pub struct GptqResult {
    /// Fake-quantized weight, `N×K` row-major, original column order.
    pub q: Vec<f32>,
    /// Integer codes `0..2^bits−1`, `N×K` row-major, original column order.
    pub codes: Vec<u8>,
    /// Scales `[N, G]` row-major, groups in creation order.
    pub scale: Vec<f32>,
    /// Zero points `[N, G]` (as floats, like AutoGPTQ's `zero`).
    pub zero: Vec<f32>,
    /// Group index of every input column `[K]` (AutoGPTQ semantics).
    pub g_idx: Vec<i32>,
    /// AutoGPTQ's `Losses.sum()` (0 for RTN).
    pub loss: f64,
    /// The damping fraction actually used (after any automatic increase).
    pub damp_used: f32,
    /// Number of columns with `diag(H) == 0`.
    pub dead_columns: usize,
}
