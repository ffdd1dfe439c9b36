// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Native GFLOP/s of `runtime::matmul` against a naive triple loop.
//!
//! `cargo run --release -p gptq-core --example bench_matmul`
//! (add `RUSTFLAGS="-C target-cpu=native"` to let LLVM use AVX/FMA; the
//! default x86-64 build is SSE2, 4 lanes like wasm SIMD128). Single thread.
//! Shapes: decode `[1×4096]·[4096×4096]ᵀ` and prefill `[512×4096]·[11008×4096]ᵀ`
//! (the naive baseline runs on a 64-row slice of the prefill input).

use gptq_core::dtype::f32_to_f16;
use gptq_core::runtime::{matmul, Weights};
use std::time::Instant;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Best wall time of `reps` runs, in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut b = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}

fn naive(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, y: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for kk in 0..k {
                s += x[i * k + kk] * w[j * k + kk];
            }
            y[i * n + j] = s;
        }
    }
}

fn report(label: &str, m: usize, n: usize, k: usize, wbytes: usize, secs: f64) {
    let gflops = 2.0 * (m * n * k) as f64 / secs / 1e9;
    let wbytes_note = if m == 1 {
        format!(
            ", weights read at {:.1} GB/s",
            (n * k * wbytes) as f64 / secs / 1e9
        )
    } else {
        String::new()
    };
    println!(
        "{label:<44} {:>9.3} ms {gflops:>8.2} GFLOP/s{wbytes_note}",
        secs * 1e3
    );
}

fn main() {
    for &(m, n, k, naive_m) in &[
        (1usize, 4096usize, 4096usize, 1usize),
        (512, 11008, 4096, 64),
    ] {
        println!("== [{m}x{k}] · [{n}x{k}]^T ==");
        let x = rand_vec(m * k, 1);
        let w = rand_vec(n * k, 2);
        let wh: Vec<u16> = w.iter().map(|&v| f32_to_f16(v)).collect();
        let wb: Vec<u16> = w.iter().map(|&v| (v.to_bits() >> 16) as u16).collect();
        let mut y = vec![0f32; m * n];
        let reps = if m == 1 { 20 } else { 2 };
        for (name, wt, wbytes) in [
            ("f32", Weights::F32(&w), 4),
            ("f16", Weights::F16(&wh), 2),
            ("bf16", Weights::Bf16(&wb), 2),
        ] {
            let s = best(reps, || {
                matmul(&x, m, k, wt, None, 0, n, &mut y, 0, n).unwrap()
            });
            report(&format!("runtime::matmul {name}"), m, n, k, wbytes, s);
        }
        let mut yn = vec![0f32; naive_m * n];
        let s = best(if m == 1 { 3 } else { 1 }, || {
            naive(&x, naive_m, k, &w, n, &mut yn)
        });
        report(
            &format!("naive triple loop f32 (M={naive_m})"),
            naive_m,
            n,
            k,
            4,
            s,
        );
        // Sanity: the two agree on the rows both computed.
        let mut max_err = 0f32;
        matmul(&x, m, k, Weights::F32(&w), None, 0, n, &mut y, 0, n).unwrap();
        for (a, b) in y[..naive_m * n].iter().zip(&yn) {
            max_err = max_err.max((a - b).abs());
        }
        println!("max |runtime - naive| = {max_err:.2e}");
    }
}
