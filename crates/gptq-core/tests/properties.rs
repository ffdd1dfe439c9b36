// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Property tests of the solver on deterministic heavy-tailed data.

mod common;

use common::Rng;
use gptq_core::gptq::{
    find_params, gptq_quantize, prepare_hessian, quantize_rows_into, quantize_value, quantize_with,
    rtn_quantize, GptqConfig, GptqError, HessianAccumulator, MseConfig, RowsOut,
};

/// Student-t(3) activations with 4 outlier channels (×20), and Student-t(4) weights.
fn data(n: usize, k: usize, t: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed);
    let outliers = [3usize, k / 3, k / 2 + 1, k - 2];
    let mut x = vec![0f32; t * k];
    for tok in 0..t {
        for j in 0..k {
            let mut v = rng.student_t(3);
            if outliers.contains(&j) {
                v *= 20.0;
            }
            x[tok * k + j] = v as f32;
        }
    }
    let w = (0..n * k)
        .map(|_| (0.02 * rng.student_t(4)) as f32)
        .collect();
    (w, x)
}

/// ‖(W − Q)·Xᵀ‖_F² in f64.
fn output_error(w: &[f32], q: &[f32], x: &[f32], n: usize, k: usize, t: usize) -> f64 {
    let mut s = 0.0;
    let mut d = vec![0f64; k];
    for r in 0..n {
        for j in 0..k {
            d[j] = (w[r * k + j] - q[r * k + j]) as f64;
        }
        for tok in 0..t {
            let xr = &x[tok * k..(tok + 1) * k];
            let v: f64 = d.iter().zip(xr).map(|(a, b)| a * *b as f64).sum();
            s += v * v;
        }
    }
    s
}

#[test]
fn gptq_beats_rtn_on_output_error_everywhere() {
    let (n, k, t, seqs) = (24, 256, 96, 4);
    let (w, x) = data(n, k, t * seqs, 42);
    let mut acc = HessianAccumulator::new(k);
    for s in 0..seqs {
        acc.add_batch(&x[s * t * k..(s + 1) * t * k], 1, t).unwrap();
    }
    let h = acc.into_h();
    let mut worst_ratio = 0.0f64;
    for bits in [2u32, 3, 4, 8] {
        for group_size in [-1i32, 32, 128] {
            for desc_act in [false, true] {
                for static_groups in [false, true] {
                    if static_groups && group_size == -1 {
                        continue;
                    }
                    let cfg = GptqConfig {
                        bits,
                        group_size,
                        desc_act,
                        static_groups,
                        sym: bits != 3,
                        ..Default::default()
                    };
                    let g = gptq_quantize(&w, n, k, &h, &cfg).unwrap();
                    let r = rtn_quantize(&w, n, k, &cfg).unwrap();
                    let (eg, er) = (
                        output_error(&w, &g.q, &x, n, k, t * seqs),
                        output_error(&w, &r.q, &x, n, k, t * seqs),
                    );
                    let ratio = eg / er;
                    eprintln!("bits {bits} g {group_size:>4} act {desc_act:<5} static {static_groups:<5}: GPTQ/RTN output error {ratio:.3}");
                    assert!(eg <= er, "GPTQ worse than RTN for {cfg:?}: {eg} > {er}");
                    assert!(g.loss > 0.0 && g.loss.is_finite());
                    worst_ratio = worst_ratio.max(ratio);
                }
            }
        }
    }
    eprintln!("worst GPTQ/RTN ratio {worst_ratio:.3}");
}

#[test]
fn mse_search_never_increases_group_error() {
    let mut rng = Rng(7);
    let mse = MseConfig::default();
    let mut improved = 0;
    let mut total = 0;
    for bits in [2u32, 3, 4, 8] {
        for sym in [false, true] {
            for _ in 0..200 {
                let len = 32 + (rng.next_u64() % 97) as usize;
                let x: Vec<f32> = (0..len).map(|_| rng.student_t(2) as f32).collect();
                let maxq = ((1u32 << bits) - 1) as f32;
                let err = |p| -> f64 {
                    x.iter()
                        .map(|&v| ((quantize_value(v, p, maxq).0 - v).abs() as f64).powf(2.4))
                        .sum()
                };
                let (e0, e1) = (
                    err(find_params(&x, bits, sym, None)),
                    err(find_params(&x, bits, sym, Some(&mse))),
                );
                assert!(
                    e1 <= e0,
                    "MSE search made it worse: {e1} > {e0} (bits {bits}, sym {sym})"
                );
                improved += (e1 < e0) as usize;
                total += 1;
            }
        }
    }
    eprintln!("MSE search strictly improved {improved}/{total} groups");
    assert!(improved > total / 2);

    // Through rtn_quantize: per-group error with mse ≤ without.
    let (n, k) = (16, 256);
    let w: Vec<f32> = (0..n * k).map(|_| rng.student_t(3) as f32).collect();
    let base = GptqConfig {
        bits: 4,
        group_size: 64,
        sym: false,
        ..Default::default()
    };
    let a = rtn_quantize(&w, n, k, &base).unwrap();
    let b = rtn_quantize(
        &w,
        n,
        k,
        &GptqConfig {
            mse: Some(mse),
            ..base
        },
    )
    .unwrap();
    for r in 0..n {
        for gi in 0..4 {
            let e = |q: &[f32]| -> f64 {
                (gi * 64..gi * 64 + 64)
                    .map(|j| ((q[r * k + j] - w[r * k + j]).abs() as f64).powf(2.4))
                    .sum()
            };
            assert!(e(&b.q) <= e(&a.q));
        }
    }
}

#[test]
fn auto_damping_kicks_in_on_indefinite_h() {
    // H = A − 0.02·mean(diag A)·I with A of rank 3: damping 0.01 fails, 0.0225 works.
    let k = 48;
    let mut rng = Rng(3);
    let v: Vec<f64> = (0..3 * k).map(|_| rng.normal()).collect();
    let mut h = vec![0f32; k * k];
    for i in 0..k {
        for j in 0..k {
            h[i * k + j] = (0..3).map(|r| v[r * k + i] * v[r * k + j]).sum::<f64>() as f32;
        }
    }
    let m: f32 = (0..k).map(|i| h[i * k + i]).sum::<f32>() / k as f32;
    for i in 0..k {
        h[i * k + i] -= 0.02 * m;
    }
    let w: Vec<f32> = (0..8 * k).map(|_| rng.normal() as f32).collect();
    let cfg = GptqConfig {
        bits: 4,
        group_size: 16,
        damp_percent: 0.01,
        damp_auto_increment: 0.0025,
        ..Default::default()
    };
    let r = gptq_quantize(&w, 8, k, &h, &cfg).unwrap();
    eprintln!("damp_used = {}", r.damp_used);
    assert!(
        r.damp_used > cfg.damp_percent && r.damp_used < 0.03,
        "damp_used {}",
        r.damp_used
    );
    let err = gptq_quantize(
        &w,
        8,
        k,
        &h,
        &GptqConfig {
            damp_auto_increment: 0.0,
            ..cfg
        },
    )
    .unwrap_err();
    match &err {
        GptqError::NotPositiveDefinite { damp_tried, .. } => assert_eq!(damp_tried, &vec![0.01f32]),
        e => panic!("unexpected {e:?}"),
    }
    assert!(err.to_string().contains("damp_percent"));
}

#[test]
fn non_finite_and_bad_shapes_are_errors() {
    let k = 16;
    let mut h = vec![0f32; k * k];
    for i in 0..k {
        h[i * k + i] = 1.0;
    }
    let w = vec![0.5f32; 2 * k];
    let cfg = GptqConfig {
        group_size: -1,
        ..Default::default()
    };
    let mut hn = h.clone();
    hn[5 * k + 7] = f32::NAN;
    match gptq_quantize(&w, 2, k, &hn, &cfg).unwrap_err() {
        GptqError::NonFinite {
            tensor, row, col, ..
        } => assert_eq!((tensor, row, col), ("H", 5, 7)),
        e => panic!("unexpected {e:?}"),
    }
    let mut wn = w.clone();
    wn[k + 3] = f32::INFINITY;
    match gptq_quantize(&wn, 2, k, &h, &cfg).unwrap_err() {
        GptqError::NonFinite {
            tensor, row, col, ..
        } => assert_eq!((tensor, row, col), ("W", 1, 3)),
        e => panic!("unexpected {e:?}"),
    }
    assert!(matches!(
        gptq_quantize(&w, 3, k, &h, &cfg),
        Err(GptqError::Shape(_))
    ));
    assert!(matches!(
        gptq_quantize(&w, 2, k, &h[1..], &cfg),
        Err(GptqError::Shape(_))
    ));
    assert!(matches!(
        gptq_quantize(&w, 2, k, &h, &GptqConfig { bits: 5, ..cfg }),
        Err(GptqError::Config(_))
    ));
    let mut acc = HessianAccumulator::new(k);
    assert!(matches!(
        acc.add_batch(&[0.0; 10], 1, 1),
        Err(GptqError::Shape(_))
    ));
    assert!(matches!(
        acc.add_batch(&[f32::NAN; 16], 1, 1),
        Err(GptqError::NonFinite { tensor: "X", .. })
    ));
}

#[test]
fn row_halves_equal_whole() {
    let (n, k, t) = (70, 200, 160);
    let (w, x) = data(n, k, t, 9);
    let mut acc = HessianAccumulator::new(k);
    acc.add_batch(&x, 2, t / 2).unwrap();
    let h = acc.into_h();
    for (desc_act, gs) in [(false, 64), (true, 48), (true, -1)] {
        let cfg = GptqConfig {
            bits: 3,
            group_size: gs,
            desc_act,
            sym: false,
            ..Default::default()
        };
        let prep = prepare_hessian(&h, k, &cfg).unwrap();
        let whole = quantize_with(&prep, &w, n).unwrap();
        let g = prep.num_groups();
        let (mut q, mut codes, mut scale, mut zero) = (
            vec![0f32; n * k],
            vec![0u8; n * k],
            vec![0f32; n * g],
            vec![0f32; n * g],
        );
        let half = 33;
        let (q1, q2) = q.split_at_mut(half * k);
        let (c1, c2) = codes.split_at_mut(half * k);
        let (s1, s2) = scale.split_at_mut(half * g);
        let (z1, z2) = zero.split_at_mut(half * g);
        let l1 = quantize_rows_into(
            &prep,
            &w[..half * k],
            half,
            RowsOut {
                q: q1,
                codes: c1,
                scale: s1,
                zero: z1,
            },
        )
        .unwrap();
        let l2 = quantize_rows_into(
            &prep,
            &w[half * k..],
            n - half,
            RowsOut {
                q: q2,
                codes: c2,
                scale: s2,
                zero: z2,
            },
        )
        .unwrap();
        assert_eq!(q, whole.q);
        assert_eq!(codes, whole.codes);
        assert_eq!(scale, whole.scale);
        assert_eq!(zero, whole.zero);
        assert!(((l1 + l2) - whole.loss).abs() <= 1e-9 * whole.loss);
    }
}
