// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Native solver benchmark at Llama-7B shapes.
//!
//! `cargo run --release -p gptq-core --example bench_solver [-- N K [N K ...]]`
//! (default: 4096 4096). Reports Hessian accumulation, Cholesky, triangular
//! inverse, the column loop (1 and 2 threads) and the lazy-update GEMM alone.

use gptq_core::gptq::linalg::{
    cholesky_lower_inplace, gemm, tri_inv_lower_inplace, zero_upper, BSrc, GemmScratch, Tri,
};
use gptq_core::gptq::{
    prepare_hessian, quantize_rows_into, GptqConfig, HessianAccumulator, RowsOut,
};
use std::time::Instant;

fn rng(s: &mut u64) -> f32 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    ((*s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn gf(flops: f64, secs: f64) -> f64 {
    flops / secs / 1e9
}

fn bench(n: usize, k: usize) {
    println!("== W {n}×{k}, H {k}×{k} ==");
    let mut s = 12345u64;
    let t = 512usize;
    let x: Vec<f32> = (0..t * k).map(|_| rng(&mut s)).collect();
    let w: Vec<f32> = (0..n * k).map(|_| 0.02 * rng(&mut s)).collect();
    let mut acc = HessianAccumulator::new(k);
    let t0 = Instant::now();
    acc.add_batch(&x, 1, t).unwrap();
    let h = acc.into_h();
    let el = t0.elapsed().as_secs_f64();
    println!(
        "add_batch {t} tokens: {el:.3} s, {:.1} GFLOP/s (lower half, K²·T flops)",
        gf((k * k * t) as f64, el)
    );

    // Cholesky and triangular inverse separately.
    let mut b = h.clone();
    for i in 0..k {
        b[i * k + i] += 0.01 * 1.0 + 0.1;
    }
    let mut sc = GemmScratch::default();
    let t0 = Instant::now();
    cholesky_lower_inplace(&mut b, k, &mut sc).unwrap();
    let tc = t0.elapsed().as_secs_f64();
    zero_upper(&mut b, k);
    let t0 = Instant::now();
    tri_inv_lower_inplace(&mut b, k, &mut sc);
    let ti = t0.elapsed().as_secs_f64();
    let kf = k as f64;
    println!(
        "cholesky: {tc:.3} s ({:.1} GFLOP/s, k³/3); triangular inverse: {ti:.3} s ({:.1} GFLOP/s, k³/3)",
        gf(kf * kf * kf / 3.0, tc),
        gf(kf * kf * kf / 3.0, ti)
    );

    // Lazy-update GEMM alone (all blocks, 64-row tiles, like the solver).
    let u = &b;
    let mut wt = vec![0f32; 64 * k];
    let err = vec![0.001f32; 64 * 128];
    let t0 = Instant::now();
    for _r0 in (0..n).step_by(64) {
        for i1 in (0..k).step_by(128) {
            let i2 = (i1 + 128).min(k);
            if i2 < k {
                unsafe {
                    gemm(
                        64,
                        k - i2,
                        i2 - i1,
                        err.as_ptr(),
                        128,
                        u.as_ptr().add(i1 * k + i2),
                        k,
                        BSrc::RowMajor,
                        wt.as_mut_ptr().add(i2),
                        k,
                        -1.0,
                        false,
                        Tri::Full,
                        &mut sc,
                    );
                }
            }
        }
    }
    let tg = t0.elapsed().as_secs_f64();
    let lazy_flops: f64 = (0..k)
        .step_by(128)
        .map(|i1| 2.0 * n as f64 * 128.0 * (k - (i1 + 128).min(k)) as f64)
        .sum();
    println!(
        "lazy-update GEMM alone: {tg:.3} s ({:.1} GFLOP/s)",
        gf(lazy_flops, tg)
    );

    for desc_act in [false, true] {
        let cfg = GptqConfig {
            bits: 4,
            group_size: 128,
            desc_act,
            ..Default::default()
        };
        let t0 = Instant::now();
        let prep = prepare_hessian(&h, k, &cfg).unwrap();
        let tp = t0.elapsed().as_secs_f64();
        let g = prep.num_groups();
        let mut q = vec![0f32; n * k];
        let mut codes = vec![0u8; n * k];
        let mut scale = vec![0f32; n * g];
        let mut zero = vec![0f32; n * g];
        let t0 = Instant::now();
        quantize_rows_into(
            &prep,
            &w,
            n,
            RowsOut {
                q: &mut q,
                codes: &mut codes,
                scale: &mut scale,
                zero: &mut zero,
            },
        )
        .unwrap();
        let t1 = t0.elapsed().as_secs_f64();
        // Two threads on row halves sharing one PreparedHessian.
        let half = n / 2;
        let t0 = Instant::now();
        {
            let (q1, q2) = q.split_at_mut(half * k);
            let (c1, c2) = codes.split_at_mut(half * k);
            let (s1, s2) = scale.split_at_mut(half * g);
            let (z1, z2) = zero.split_at_mut(half * g);
            let (w1, w2) = w.split_at(half * k);
            let p = &prep;
            std::thread::scope(|sc| {
                sc.spawn(move || {
                    quantize_rows_into(
                        p,
                        w1,
                        half,
                        RowsOut {
                            q: q1,
                            codes: c1,
                            scale: s1,
                            zero: z1,
                        },
                    )
                    .unwrap()
                });
                quantize_rows_into(
                    p,
                    w2,
                    n - half,
                    RowsOut {
                        q: q2,
                        codes: c2,
                        scale: s2,
                        zero: z2,
                    },
                )
                .unwrap();
            });
        }
        let t2 = t0.elapsed().as_secs_f64();
        let col_flops = 2.0 * n as f64 * kf * kf / 2.0; // lazy + intra-block ≈ N·K² MACs
        println!(
            "4-bit g128 act-order={desc_act}: prepare {tp:.3} s (damp {}) + column loop {t1:.3} s ({:.1} GFLOP/s) = {:.3} s; column loop on 2 threads {t2:.3} s",
            prep.damp_used(),
            gf(col_flops, t1),
            tp + t1
        );
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N K pairs"))
        .collect();
    let shapes: Vec<(usize, usize)> = if args.len() >= 2 {
        args.chunks_exact(2).map(|c| (c[0], c[1])).collect()
    } else {
        vec![(4096, 4096)]
    };
    for (n, k) in shapes {
        bench(n, k);
    }
}
