// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Streaming Hessian accumulation, AutoGPTQ `GPTQ.add_batch`:
//! `H *= n/(n+b); n += b; x *= sqrt(2/n); H += xᵀx`, with `n` counting
//! sequences (the batch dimension), not tokens.

use super::error::{check_finite, GptqError};
use super::linalg::{gemm, BSrc, GemmScratch, Tri};

const TOKEN_CHUNK: usize = 256;

/// Running `H = (2/n_seq)·Σ x·xᵀ` over calibration activations (`K×K`, f32).
#[derive(Debug)]
pub struct HessianAccumulator {
    k: usize,
    h: Vec<f32>,
    nsamples: u64,
    symmetric: bool,
    chunk: Vec<f32>,
    scratch: GemmScratch,
}

impl HessianAccumulator {
    /// A zero Hessian for `k` input features.
    pub fn new(k: usize) -> Self {
        HessianAccumulator {
            k,
            h: vec![0.0; k * k],
            nsamples: 0,
            symmetric: true,
            chunk: Vec::new(),
            scratch: GemmScratch::default(),
        }
    }

    /// Number of input features `K`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Sequences accumulated so far (AutoGPTQ's `nsamples`).
    pub fn nsamples(&self) -> u64 {
        self.nsamples
    }

    /// Adds one batch: `x` is `[n_seq·tokens_per_seq, K]` row-major (a layer
    /// input `[n_seq, tokens_per_seq, K]`). Like AutoGPTQ, the running average
    /// weights by sequences (`n_seq`), and padded tokens are not masked.
    pub fn add_batch(
        &mut self,
        x: &[f32],
        n_seq: usize,
        tokens_per_seq: usize,
    ) -> Result<(), GptqError> {
        let k = self.k;
        let t = n_seq * tokens_per_seq;
        if n_seq == 0 || x.len() != t * k {
            return Err(GptqError::Shape(format!(
                "add_batch: X has {} values but n_seq·tokens·K = {n_seq}·{tokens_per_seq}·{k} = {}; \
                 pass the layer input as [n_seq, tokens, K] with n_seq > 0",
                x.len(),
                t * k
            )));
        }
        check_finite("X", x, k)?;
        let old = self.nsamples;
        let new = old + n_seq as u64;
        let ratio = (old as f64 / new as f64) as f32;
        for v in self.h.iter_mut() {
            *v *= ratio;
        }
        self.nsamples = new;
        let s = (2.0f64 / new as f64).sqrt() as f32;
        for t0 in (0..t).step_by(TOKEN_CHUNK) {
            let tc = TOKEN_CHUNK.min(t - t0);
            // chunk = (s·x[t0..t0+tc])ᵀ, K×tc.
            self.chunk.resize(k * tc, 0.0);
            for (p, row) in x[t0 * k..(t0 + tc) * k].chunks_exact(k).enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    self.chunk[i * tc + p] = s * v;
                }
            }
            // SAFETY: chunk (K×tc) and h (K×K) are distinct buffers of the right size.
            unsafe {
                gemm(
                    k,
                    k,
                    tc,
                    self.chunk.as_ptr(),
                    tc,
                    self.chunk.as_ptr(),
                    tc,
                    BSrc::Trans,
                    self.h.as_mut_ptr(),
                    k,
                    1.0,
                    false,
                    Tri::LowerC,
                    &mut self.scratch,
                );
            }
        }
        self.symmetric = false;
        Ok(())
    }

    /// The accumulated Hessian, `K×K` row-major (symmetric).
    pub fn h(&mut self) -> &[f32] {
        if !self.symmetric {
            let k = self.k;
            for i in 0..k {
                for j in i + 1..k {
                    self.h[i * k + j] = self.h[j * k + i];
                }
            }
            self.symmetric = true;
        }
        &self.h
    }

    /// Consumes the accumulator, returning `H` (`K×K`, symmetric).
    pub fn into_h(mut self) -> Vec<f32> {
        self.h();
        self.h
    }
}
