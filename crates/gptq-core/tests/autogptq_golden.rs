// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The solver against AutoGPTQ's own outputs (`shared/data/golden/autogptq`):
//! Q, scale, zero, g_idx for every case, codes consistency, and Hessian
//! accumulation from the raw activations X.
//!
//! What is asserted, per case: g_idx identical; zero identical; integer codes
//! equal for ≥ 99.9% of weights (all of them, today); every Q within one step;
//! where codes agree, |ΔQ|/|Q| ≤ 1e-6; scale within 1e-6 relative. Q and scale
//! are bit-identical when no group parameters are computed from lazily
//! updated columns (g = −1, static groups). Otherwise `find_params` reads W
//! after `W[:, i2:] -= Err1·U`, and U comes from torch's f32 LAPACK chain
//! (cholesky → cholesky_inverse → cholesky): its last-bit rounding cannot be
//! reproduced (an f64 U moves the bit-equal share by < 3 points), so a few %
//! of scales differ by 1–3 ulp, which changes Q in the last bit, not the codes.

#![allow(clippy::needless_range_loop)]

mod common;

use common::{data_dir, read_safetensors};
use gptq_core::gptq::{gptq_quantize, GptqConfig, HessianAccumulator};

fn ulp_rel_eq(a: f32, b: f32) -> bool {
    a == b || (a - b).abs() <= f32::EPSILON * a.abs().max(b.abs())
}

struct Case {
    file: String,
    cfg: GptqConfig,
    dead: Vec<usize>,
}

fn cases() -> Vec<Case> {
    let dir = data_dir().join("golden/autogptq");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    j["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            file: s(&c["file"]),
            cfg: GptqConfig {
                bits: s(&c["bits"]).parse().unwrap(),
                group_size: s(&c["group_size"]).parse().unwrap(),
                sym: s(&c["sym"]) == "true",
                desc_act: s(&c["desc_act"]) == "true",
                static_groups: s(&c["static_groups"]) == "true",
                damp_percent: s(&c["damp_percent"]).parse().unwrap(),
                damp_auto_increment: 0.0,
                blocksize: s(&c["blocksize"]).parse().unwrap(),
                mse: None,
            },
            dead: c["dead_columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
        })
        .collect()
}

#[test]
fn every_golden_case_matches_autogptq() {
    let dir = data_dir().join("golden/autogptq");
    let cases = cases();
    assert_eq!(cases.len(), 8, "cases.json lists 8 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let st = read_safetensors(&dir.join(&case.file));
        // The file's own metadata agrees with cases.json.
        assert_eq!(
            st.metadata["bits"],
            case.cfg.bits.to_string(),
            "{}",
            case.file
        );
        assert_eq!(
            st.metadata["damp_percent"].parse::<f32>().unwrap(),
            case.cfg.damp_percent
        );
        let wt = &st.tensors["W"];
        let (n, k) = (wt.shape[0], wt.shape[1]);
        let w = wt.f32();
        let h = st.tensors["H"].f32();
        let q_ref = st.tensors["Q"].f32();
        let scale_ref = st.tensors["scale"].f32();
        let zero_ref = st.tensors["zero"].f32();
        let g_idx_ref = st.tensors["g_idx"].i32();
        let g = st.tensors["scale"].shape[1];

        let r = gptq_quantize(&w, n, k, &h, &case.cfg).unwrap();
        assert_eq!(r.dead_columns, case.dead.len(), "{}", case.file);
        assert_eq!(r.damp_used, case.cfg.damp_percent);
        assert_eq!(r.scale.len(), n * g, "{}: G", case.file);
        assert_eq!(r.g_idx, g_idx_ref, "{}: g_idx", case.file);

        let maxq = ((1u32 << case.cfg.bits) - 1) as f32;
        let total = n * k;
        let (mut q_exact, mut code_eq, mut within_step) = (0usize, 0usize, 0usize);
        let mut max_dq_code_eq = 0.0f64; // |ΔQ| / |Q| where the codes agree
        for row in 0..n {
            for col in 0..k {
                let i = row * k + col;
                let gi = g_idx_ref[col] as usize;
                let (s, z) = (scale_ref[row * g + gi], zero_ref[row * g + gi]);
                let code_ref = ((q_ref[i] / s).round_ties_even() + z).clamp(0.0, maxq);
                if r.q[i] == q_ref[i] {
                    q_exact += 1;
                }
                let dq = (r.q[i] - q_ref[i]).abs() as f64 / s as f64;
                if dq <= 1.0 + 1e-4 {
                    within_step += 1;
                }
                if r.codes[i] as f32 == code_ref {
                    code_eq += 1;
                    if q_ref[i] != 0.0 {
                        max_dq_code_eq = max_dq_code_eq
                            .max((r.q[i] - q_ref[i]).abs() as f64 / q_ref[i].abs() as f64);
                    } else {
                        assert_eq!(r.q[i], 0.0);
                    }
                }
                // The codes are exactly round(Q/scale)+zero of our own Q and scale.
                let (s2, z2) = (r.scale[row * g + gi], r.zero[row * g + gi]);
                assert_eq!(
                    r.q[i],
                    s2 * (r.codes[i] as f32 - z2),
                    "{}: Q vs codes at ({row},{col})",
                    case.file
                );
            }
        }
        let (mut scale_exact, mut scale_1ulp, mut max_scale_rel) = (0usize, 0usize, 0.0f64);
        for i in 0..n * g {
            if r.scale[i] == scale_ref[i] {
                scale_exact += 1;
            } else if ulp_rel_eq(r.scale[i], scale_ref[i]) {
                scale_1ulp += 1;
            }
            max_scale_rel =
                max_scale_rel.max(((r.scale[i] - scale_ref[i]) / scale_ref[i]).abs() as f64);
        }
        let zero_eq = (0..n * g).filter(|&i| r.zero[i] == zero_ref[i]).count();
        eprintln!(
            "{:<34} codes equal {code_eq}/{total}; Q bit-equal {q_exact} ({:.2}%), |ΔQ| ≤ 1 step {within_step}, \
             max |ΔQ|/|Q| where codes agree {max_dq_code_eq:.1e}; scale bit-equal {scale_exact}/{} (+{scale_1ulp} ≤1 ulp), \
             max rel Δscale {max_scale_rel:.1e}; zero equal {zero_eq}; loss {:.6}",
            case.file,
            100.0 * q_exact as f64 / total as f64,
            n * g,
            r.loss
        );
        if code_eq * 1000 < total * 999
            || within_step != total
            || max_dq_code_eq > 1e-6
            || max_scale_rel > 1e-6
            || zero_eq != n * g
        {
            failures.push(case.file.clone());
        }
    }
    assert!(
        failures.is_empty(),
        "cases off the AutoGPTQ goldens: {failures:?}"
    );
}

#[test]
fn hessian_accumulation_matches_golden_h() {
    let dir = data_dir().join("golden/autogptq");
    let st = read_safetensors(&dir.join("b4_g-1_sym.safetensors"));
    let xt = &st.tensors["X"];
    assert_eq!(xt.shape, vec![8, 64, 256]);
    let (ns, t, k) = (xt.shape[0], xt.shape[1], xt.shape[2]);
    let x = xt.f32();
    let h_ref = st.tensors["H"].f32();
    let mut acc = HessianAccumulator::new(k);
    for s in 0..ns {
        acc.add_batch(&x[s * t * k..(s + 1) * t * k], 1, t).unwrap();
    }
    assert_eq!(acc.nsamples(), 8);
    let h = acc.h();
    let mut max_rel = 0.0f64;
    let hmax = h_ref.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (a, b) in h.iter().zip(&h_ref) {
        let d = (*a as f64 - *b as f64).abs();
        max_rel = max_rel.max(d / hmax);
        num += d * d;
        den += (*b as f64).powi(2);
    }
    let fro_rel = (num / den).sqrt();
    eprintln!("H from X: max |ΔH|/max|H| = {max_rel:.3e}, ‖ΔH‖F/‖H‖F = {fro_rel:.3e}");
    assert!(
        fro_rel <= 1e-5 && max_rel <= 1e-5,
        "H relative error {fro_rel:e} / {max_rel:e}"
    );

    // One batch of all 8 sequences gives the same H (running average by sequences).
    let mut acc8 = HessianAccumulator::new(k);
    acc8.add_batch(&x, ns, t).unwrap();
    let h8 = acc8.h();
    let d = h8
        .iter()
        .zip(&h_ref)
        .map(|(a, b)| ((a - b) as f64).abs())
        .fold(0.0, f64::max);
    assert!(d / hmax <= 1e-5, "single-batch H off by {d}");
}
