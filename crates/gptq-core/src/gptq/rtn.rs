// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Round-to-nearest baseline: the same quantizer and group layout as GPTQ,
//! without error feedback.

use super::error::{check_finite, GptqError};
use super::quantizer::{find_params, quantize_value};
use super::{GptqConfig, GptqResult};

/// Round-to-nearest quantization of `w` (`n×k` row-major) with `cfg`'s bits,
/// group size, symmetry and MSE option (act-order and damping do not apply;
/// `g_idx[k] = k / group_size`).
pub fn rtn_quantize(
    w: &[f32],
    n: usize,
    k: usize,
    cfg: &GptqConfig,
) -> Result<GptqResult, GptqError> {
    cfg.validate()?;
    if k == 0 || w.len() != n * k {
        return Err(GptqError::Shape(format!(
            "W has {} values, expected N·K = {n}·{k} = {}; W must be [N, K]",
            w.len(),
            n * k
        )));
    }
    check_finite("W", w, k)?;
    let g = cfg.num_groups(k);
    let gw = cfg.group_width(k);
    let maxq = ((1u32 << cfg.bits) - 1) as f32;
    let mut q = vec![0.0f32; n * k];
    let mut codes = vec![0u8; n * k];
    let mut scale = vec![0.0f32; n * g];
    let mut zero = vec![0.0f32; n * g];
    for r in 0..n {
        for gi in 0..g {
            let (c0, c1) = (gi * gw, ((gi + 1) * gw).min(k));
            let src = &w[r * k + c0..r * k + c1];
            let p = find_params(src, cfg.bits, cfg.sym, cfg.mse.as_ref());
            scale[r * g + gi] = p.scale;
            zero[r * g + gi] = p.zero;
            for (j, &x) in src.iter().enumerate() {
                let (qv, c) = quantize_value(x, p, maxq);
                q[r * k + c0 + j] = qv;
                codes[r * k + c0 + j] = c as u8;
            }
        }
    }
    let g_idx = (0..k).map(|c| (c / gw) as i32).collect();
    Ok(GptqResult {
        q,
        codes,
        scale,
        zero,
        g_idx,
        loss: 0.0,
        damp_used: 0.0,
        dead_columns: 0,
    })
}
