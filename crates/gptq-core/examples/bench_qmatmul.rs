// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Native throughput of the fused GPTQ dequant-matmul (`runtime::qmatmul`)
//! against the dense f16 `runtime::matmul`, single thread.
//!
//! `cargo run --release -p gptq-core --example bench_qmatmul [quick|big]`
//!
//! The default x86-64 build is SSE2 (4 lanes, like wasm SIMD128), so these
//! numbers are a proxy for the wasm backend. Shapes are Llama-7B linears
//! (`N×K` = 4096×4096, 11008×4096, 4096×11008) at 4 bits, group 128, and
//! 4096×4096 at 2, 3 and 8 bits; decode (`M = 1`) and prefill (`M = 64`);
//! act-order `g_idx` with rows reordered at load vs gathered per row.
//! Prints weight bytes streamed per second and GFLOP/s.

use gptq_core::dtype::f32_to_f16;
use gptq_core::pack::{pack_cols, pack_rows};
use gptq_core::runtime::{matmul, qmatmul, QMode, QWeights, QuantTensors, Weights};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn f(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// Best wall time of `reps` runs (after one warm-up), in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut b = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}

fn report(label: &str, m: usize, n: usize, k: usize, bytes: usize, secs: f64) {
    println!(
        "{label:<40} M={m:<3} {:>9.3} ms {:>7.2} GFLOP/s {:>6.2} GB/s weights",
        secs * 1e3,
        2.0 * (m * n * k) as f64 / secs / 1e9,
        bytes as f64 / secs / 1e9
    );
}

struct Packed {
    qweight: Vec<i32>,
    qzeros: Vec<i32>,
    scales: Vec<u16>,
    g_idx: Vec<i32>,
}

fn packed(rng: &mut Rng, n: usize, k: usize, bits: u32, group: usize, act: bool) -> Packed {
    let maxq = (1u64 << bits) - 1;
    let g = k.div_ceil(group);
    let codes: Vec<u32> = (0..k * n)
        .map(|_| (rng.next() % (maxq + 1)) as u32)
        .collect();
    let zeros: Vec<u32> = (0..g * n)
        .map(|_| (rng.next() % (maxq + 1)) as u32)
        .collect();
    let scales = (0..g * n)
        .map(|_| f32_to_f16(0.01 * rng.f().abs() + 1e-3))
        .collect();
    let mut g_idx: Vec<i32> = (0..k).map(|i| (i / group) as i32).collect();
    if act {
        let mut perm: Vec<usize> = (0..k).collect();
        for i in (1..k).rev() {
            perm.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for (i, &p) in perm.iter().enumerate() {
            g_idx[p] = (i / group) as i32;
        }
    }
    Packed {
        qweight: pack_rows(&codes, k, n, bits).unwrap(),
        qzeros: pack_cols(&zeros, g, n, bits).unwrap(),
        scales,
        g_idx,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let big = std::env::args().any(|a| a == "big");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let shapes: &[(usize, usize, u32)] = if quick {
        &[(4096, 4096, 4)]
    } else if big {
        &[(11008, 4096, 4)]
    } else {
        &[
            (4096, 4096, 4),
            (11008, 4096, 4),
            (4096, 11008, 4),
            (4096, 4096, 2),
            (4096, 4096, 3),
            (4096, 4096, 8),
        ]
    };
    for &(n, k, bits) in shapes {
        println!("== N×K = {n}×{k}, {bits}-bit, group 128 ==");
        let x: Vec<f32> = (0..64 * k).map(|_| rng.f()).collect();
        let mut y = vec![0f32; 64 * n];
        // Dense f16 baseline (first shape of each size and 4-bit only).
        if bits == 4 {
            let wh: Vec<u16> = (0..n * k).map(|_| f32_to_f16(rng.f() * 0.05)).collect();
            for m in [1usize, 64] {
                let reps = if m == 1 { 20 } else { 3 };
                let s = best(reps, || {
                    matmul(&x, m, k, Weights::F16(&wh), None, 0, n, &mut y, 0, n).unwrap()
                });
                report("f16 dense matmul", m, n, k, n * k * 2, s);
            }
        }
        for act in [false, true] {
            let p = packed(&mut rng, n, k, bits, 128, act);
            let t = QuantTensors {
                qweight: &p.qweight,
                qzeros: &p.qzeros,
                scales: &p.scales,
                g_idx: Some(&p.g_idx),
                k,
                n,
                bits,
                v2: false,
            };
            let modes: &[QMode] = if act {
                &[QMode::Reorder, QMode::Gather]
            } else {
                &[QMode::Auto]
            };
            for &mode in modes {
                let t0 = Instant::now();
                let q = QWeights::new(&t, 0, n, mode).unwrap();
                let load = t0.elapsed().as_secs_f64();
                let label = format!(
                    "gptq{bits} {}{:?} (load {:.0} ms)",
                    if act { "act-order " } else { "" },
                    q.mode(),
                    load * 1e3
                );
                for m in [1usize, 64] {
                    let reps = if m == 1 { 20 } else { 3 };
                    let s = best(reps, || {
                        qmatmul(&x, m, k, &q, None, 0, n, &mut y, 0, n).unwrap()
                    });
                    report(&label, m, n, k, q.byte_len(), s);
                }
            }
        }
    }
}
