// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The solver against AutoGPTQ's own outputs (`shared/data/golden/autogptq`):
//! Q, scale, zero, g_idx for every case, codes consistency, and Hessian
//! accumulation from the raw activations X.

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
            dead: c["dead_columns"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect(),
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
        assert_eq!(st.metadata["bits"], case.cfg.bits.to_string(), "{}", case.file);
        assert_eq!(st.metadata["damp_percent"].parse::<f32>().unwrap(), case.cfg.damp_percent);
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

        let mut exact = 0usize;
        let mut one_step = 0usize;
        let mut worse = 0usize;
        for row in 0..n {
            for col in 0..k {
                let i = row * k + col;
                let gi = g_idx_ref[col] as usize;
                let s = scale_ref[row * g + gi];
                if r.q[i] == q_ref[i] {
                    exact += 1;
                    // Codes equal round(Q/scale) + zero wherever Q matches.
                    let z = zero_ref[row * g + gi];
                    let want = ((q_ref[i] / s).round_ties_even() + z).clamp(0.0, ((1u32 << case.cfg.bits) - 1) as f32);
                    assert_eq!(r.codes[i] as f32, want, "{}: code at ({row},{col})", case.file);
                } else if (r.q[i] - q_ref[i]).abs() <= s * 1.0001 {
                    one_step += 1;
                } else {
                    worse += 1;
                }
            }
        }
        let mut scale_exact = 0;
        let mut scale_ulp = 0;
        let mut scale_bad = 0;
        let mut zero_bad = 0;
        for i in 0..n * g {
            if r.scale[i] == scale_ref[i] {
                scale_exact += 1;
            } else if ulp_rel_eq(r.scale[i], scale_ref[i]) {
                scale_ulp += 1;
            } else {
                scale_bad += 1;
            }
            if r.zero[i] != zero_ref[i] {
                zero_bad += 1;
            }
        }
        let total = n * k;
        eprintln!(
            "{:<36} Q exact {exact}/{total} ({:.4}%), off by one step {one_step}, worse {worse}; \
             scale exact {scale_exact}/{} (+{scale_ulp} within 1 ulp, {scale_bad} off); zero mismatches {zero_bad}; loss {:.6}",
            case.file,
            100.0 * exact as f64 / total as f64,
            n * g,
            r.loss
        );
        if exact * 1000 < total * 999 || worse > 0 || scale_bad > 0 || zero_bad > 0 {
            failures.push(case.file.clone());
        }
    }
    assert!(failures.is_empty(), "cases off the AutoGPTQ goldens: {failures:?}");
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
    assert!(fro_rel <= 1e-5 && max_rel <= 1e-5, "H relative error {fro_rel:e} / {max_rel:e}");

    // One batch of all 8 sequences gives the same H (running average by sequences).
    let mut acc8 = HessianAccumulator::new(k);
    acc8.add_batch(&x, ns, t).unwrap();
    let h8 = acc8.h();
    let d = h8.iter().zip(&h_ref).map(|(a, b)| ((a - b) as f64).abs()).fold(0.0, f64::max);
    assert!(d / hmax <= 1e-5, "single-batch H off by {d}");
}
