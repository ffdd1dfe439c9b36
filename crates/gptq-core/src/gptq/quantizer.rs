// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! AutoGPTQ's min-max quantizer (`quantizer.py`), bit-exact in f32:
//! `scale = (xmax − xmin)/maxq`, `zero = (maxq+1)/2` (sym) or `round(−xmin/scale)`,
//! `Q(x) = scale·(clamp(round(x/scale)+zero, 0, maxq) − zero)` with round-half-even.

use super::MseConfig;

/// Quantization parameters of one row of one group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Step size.
    pub scale: f32,
    /// Zero point (an integer stored as f32, as in AutoGPTQ).
    pub zero: f32,
}

/// Quantizes `x`, returning `(fake-quantized value, integer code)`.
#[inline(always)]
pub fn quantize_value(x: f32, p: QParams, maxq: f32) -> (f32, f32) {
    let c = ((x / p.scale).round_ties_even() + p.zero).clamp(0.0, maxq);
    (p.scale * (c - p.zero), c)
}

#[inline(always)]
fn params_from_range(xmin: f32, xmax: f32, maxq: f32, sym: bool) -> QParams {
    let scale = (xmax - xmin) / maxq;
    let zero = if sym {
        (maxq + 1.0) / 2.0
    } else {
        (-xmin / scale).round_ties_even()
    };
    QParams { scale, zero }
}

/// AutoGPTQ `find_params(x, weight=True)` for one row's slice `x` (one group).
///
/// `mse` enables the shrinking grid search (norm 2.4, grid 100, maxshrink 0.8 by default).
pub fn find_params(x: &[f32], bits: u32, sym: bool, mse: Option<&MseConfig>) -> QParams {
    let maxq = ((1u32 << bits) - 1) as f32;
    let mut xmin = 0.0f32;
    let mut xmax = 0.0f32;
    for &v in x {
        xmin = xmin.min(v);
        xmax = xmax.max(v);
    }
    if sym {
        xmax = xmax.max(xmin.abs());
        if xmin < 0.0 {
            xmin = -xmax;
        }
    }
    if xmin == 0.0 && xmax == 0.0 {
        xmin = -1.0;
        xmax = 1.0;
    }
    let mut best = params_from_range(xmin, xmax, maxq, sym);
    if let Some(m) = mse {
        let steps = (m.maxshrink as f64 * m.grid as f64) as u32;
        let mut best_err = f64::INFINITY;
        for i in 0..steps {
            let p = (1.0 - i as f64 / m.grid as f64) as f32;
            let (xmin1, xmax1) = (p * xmin, p * xmax);
            let scale1 = (xmax1 - xmin1) / maxq;
            let zero1 = if sym {
                best.zero
            } else {
                (-xmin1 / scale1).round_ties_even()
            };
            let cand = QParams {
                scale: scale1,
                zero: zero1,
            };
            let err = lp_error(x, cand, maxq, m.norm);
            if err < best_err {
                best_err = err;
                best = cand;
            }
        }
    }
    best
}

/// `Σ |Q(x) − x|^norm` over `x` (the MSE search objective).
pub(crate) fn lp_error(x: &[f32], p: QParams, maxq: f32, norm: f32) -> f64 {
    let mut s = 0.0f64;
    for &v in x {
        let (q, _) = quantize_value(v, p, maxq);
        s += ((q - v).abs() as f64).powf(norm as f64);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sym_4bit_zero_is_8_and_half_even() {
        let p = find_params(&[-1.5, 0.5, 1.0], 4, true, None);
        assert_eq!(p.zero, 8.0);
        assert_eq!(p.scale, 3.0 / 15.0);
        // 0.5 / 0.2 = 2.5 → rounds to 2 (half to even)
        let s = 0.2f32;
        let (_, c) = quantize_value(
            2.5 * s,
            QParams {
                scale: s,
                zero: 8.0,
            },
            15.0,
        );
        assert_eq!(c, ((2.5 * s) / s).round_ties_even() + 8.0);
    }

    #[test]
    fn zero_row_gets_unit_range() {
        let p = find_params(&[0.0; 4], 4, false, None);
        assert_eq!(p.scale, 2.0 / 15.0);
        assert_eq!(p.zero, (1.0f32 / (2.0 / 15.0)).round_ties_even());
    }

    #[test]
    fn nonnegative_sym_row_keeps_xmin_zero() {
        let p = find_params(&[0.0, 3.0], 3, true, None);
        assert_eq!(p.scale, 3.0 / 7.0);
        assert_eq!(p.zero, 4.0);
    }
}
