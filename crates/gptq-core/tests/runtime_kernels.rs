// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Runtime kernels against naive f64 reference implementations written from
//! the definitions (HF conventions), on random shapes including odd sizes.

use gptq_core::dtype::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use gptq_core::runtime::activation::{add, erf, gelu_erf, gelu_tanh, relu, silu_mul, softmax};
use gptq_core::runtime::attention::attention;
use gptq_core::runtime::norm::{layer_norm, rms_norm};
use gptq_core::runtime::ops::{copy_2d, embed};
use gptq_core::runtime::rope::rope;
use gptq_core::runtime::{matmul, transpose, Weights};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Asserts `|got - want| <= tol * (mag + 1)` element-wise.
fn close(what: &str, got: &[f32], want: &[f64], mag: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f64;
    for i in 0..got.len() {
        let err = (got[i] as f64 - want[i]).abs() / (mag[i] + 1.0);
        assert!(
            err.is_finite(),
            "{what}: element {i} is {} (want {})",
            got[i],
            want[i]
        );
        worst = worst.max(err);
        assert!(
            err <= tol,
            "{what}: element {i}: got {} want {} (rel err {err:e})",
            got[i],
            want[i]
        );
    }
    eprintln!("{what}: max relative error {worst:.2e}");
}

enum Dt {
    F32,
    F16,
    Bf16,
}

/// Random `[n, k]` weights in dtype `dt`: storage and the exact f64 values.
fn weights(rng: &mut Rng, n: usize, k: usize, dt: &Dt) -> (Vec<f32>, Vec<u16>, Vec<f64>) {
    let w = rng.vec(n * k, 1.0);
    match dt {
        Dt::F32 => (w.clone(), vec![], w.iter().map(|&v| v as f64).collect()),
        Dt::F16 => {
            let b: Vec<u16> = w.iter().map(|&v| f32_to_f16(v)).collect();
            let e = b.iter().map(|&h| f16_to_f32(h) as f64).collect();
            (vec![], b, e)
        }
        Dt::Bf16 => {
            let b: Vec<u16> = w.iter().map(|&v| f32_to_bf16(v)).collect();
            let e = b.iter().map(|&h| bf16_to_f32(h) as f64).collect();
            (vec![], b, e)
        }
    }
}

fn wref<'a>(dt: &Dt, f: &'a [f32], b: &'a [u16]) -> Weights<'a> {
    match dt {
        Dt::F32 => Weights::F32(f),
        Dt::F16 => Weights::F16(b),
        Dt::Bf16 => Weights::Bf16(b),
    }
}

#[test]
fn runtime_matmul_matches_naive_all_dtypes_and_shapes() {
    let mut rng = Rng(0x1234_5678);
    let ms = [1usize, 2, 3, 4, 5, 7, 16, 33];
    let ks = [1usize, 3, 8, 17, 64, 255, 257, 300];
    let ns = [1usize, 5, 8, 13, 130, 257];
    let mut cases = 0;
    for dt in [Dt::F32, Dt::F16, Dt::Bf16] {
        for (ci, &m) in ms.iter().enumerate() {
            for (cj, &k) in ks.iter().enumerate() {
                let n = ns[(ci + cj) % ns.len()];
                let x = rng.vec(m * k, 2.0);
                let (wf, wb, we) = weights(&mut rng, n, k, &dt);
                let bias = rng.vec(n, 1.0);
                let use_bias = (ci + cj) % 2 == 0;
                // Output range: the whole N, or a random sub-range.
                let (n0, n1) = if cj % 3 == 0 {
                    (0, n)
                } else {
                    let a = rng.below(n + 1);
                    let b = rng.below(n + 1);
                    (a.min(b), a.max(b))
                };
                // Write at their place in a padded [m, n + 3] buffer.
                let ldy = n + 3;
                let y_off = n0 + 1;
                let sentinel = -777.0f32;
                let mut y = vec![sentinel; m * ldy + 4];
                matmul(
                    &x,
                    m,
                    k,
                    wref(&dt, &wf, &wb),
                    use_bias.then_some(&bias[..]),
                    n0,
                    n1,
                    &mut y,
                    y_off,
                    ldy,
                )
                .unwrap();
                let (mut got, mut want, mut mag) = (vec![], vec![], vec![]);
                for i in 0..m {
                    for j in 0..n {
                        let idx = i * ldy + j + 1;
                        if j < n0 || j >= n1 {
                            assert_eq!(
                                y[idx], sentinel,
                                "column {j} outside {n0}..{n1} was written"
                            );
                            continue;
                        }
                        let mut s = if use_bias { bias[j] as f64 } else { 0.0 };
                        let mut a = s.abs();
                        for kk in 0..k {
                            let p = x[i * k + kk] as f64 * we[j * k + kk];
                            s += p;
                            a += p.abs();
                        }
                        got.push(y[idx]);
                        want.push(s);
                        mag.push(a);
                    }
                }
                close(
                    &format!("matmul m={m} k={k} n={n} [{n0},{n1})"),
                    &got,
                    &want,
                    &mag,
                    1e-5,
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 3 * ms.len() * ks.len());
}

#[test]
fn runtime_matmul_split_halves_equal_whole() {
    let mut rng = Rng(99);
    for &(m, k, n) in &[
        (1usize, 96usize, 50usize),
        (9, 130, 77),
        (64, 256, 200),
        (67, 520, 300),
    ] {
        let x = rng.vec(m * k, 1.0);
        let w = rng.vec(n * k, 1.0);
        let b = rng.vec(n, 1.0);
        let mut whole = vec![0f32; m * n];
        matmul(&x, m, k, Weights::F32(&w), Some(&b), 0, n, &mut whole, 0, n).unwrap();
        // Worker A: rows 0..h of the full weight, written in place.
        let h = n / 2 + 1;
        let mut split = vec![0f32; m * n];
        matmul(&x, m, k, Weights::F32(&w), Some(&b), 0, h, &mut split, 0, n).unwrap();
        // Worker B holds only rows h..n (its own compact weight slice) and
        // writes a compact [m, n-h] block that is then copied in.
        let wb = &w[h * k..];
        let mut part = vec![0f32; m * (n - h)];
        matmul(
            &x,
            m,
            k,
            Weights::F32(wb),
            Some(&b[h..]),
            0,
            n - h,
            &mut part,
            0,
            n - h,
        )
        .unwrap();
        copy_2d(&part, 0, n - h, &mut split, h, n, m, n - h).unwrap();
        assert_eq!(split, whole, "m={m}: split results must be bit-identical");
    }
}

#[test]
fn runtime_widening_matches_dtype_module_for_every_bit_pattern() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut got = vec![0f32; all.len()];
    for (name, w, f) in [
        ("f16", Weights::F16(&all), f16_to_f32 as fn(u16) -> f32),
        ("bf16", Weights::Bf16(&all), bf16_to_f32 as fn(u16) -> f32),
    ] {
        w.widen_into(0, &mut got);
        for (i, &h) in all.iter().enumerate() {
            let want = f(h);
            let ok = if want.is_nan() {
                got[i].is_nan()
            } else {
                got[i].to_bits() == want.to_bits()
            };
            assert!(ok, "{name} 0x{h:04x}: got {} want {want}", got[i]);
            let one = w.get(i);
            let ok = if want.is_nan() {
                one.is_nan()
            } else {
                one.to_bits() == want.to_bits()
            };
            assert!(ok, "{name} get 0x{h:04x}: got {one} want {want}");
        }
    }
    // The matmul paths widen with the same code: a one-hot x picks columns.
    let k = 16;
    let n = all.len() / k;
    let mut y = vec![0f32; 4 * n];
    let mut x = vec![0f32; 4 * k];
    for i in 0..4 {
        x[i * k + 3 + i] = 1.0;
    }
    for m in [1usize, 4] {
        matmul(
            &x[..m * k],
            m,
            k,
            Weights::F16(&all),
            None,
            0,
            n,
            &mut y[..m * n],
            0,
            n,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let want = f16_to_f32(all[j * k + 3 + i]);
                if want.is_finite() {
                    assert_eq!(y[i * n + j], want, "m={m} row {i} col {j}");
                } else if want.is_nan() {
                    assert!(y[i * n + j].is_nan());
                }
            }
        }
    }
}

#[test]
fn runtime_transpose_conv1d_then_matmul() {
    let mut rng = Rng(7);
    let (m, k, n) = (5usize, 37usize, 45usize);
    let x = rng.vec(m * k, 1.0);
    let kn = rng.vec(k * n, 1.0); // GPT-2 Conv1D weight [K, N]
    let nk = transpose(&kn, k, n, 0, n).unwrap();
    let mut y = vec![0f32; m * n];
    matmul(&x, m, k, Weights::F32(&nk), None, 0, n, &mut y, 0, n).unwrap();
    let (mut want, mut mag) = (vec![], vec![]);
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut a) = (0f64, 0f64);
            for kk in 0..k {
                let p = x[i * k + kk] as f64 * kn[kk * n + j] as f64;
                s += p;
                a += p.abs();
            }
            want.push(s);
            mag.push(a);
        }
    }
    close("conv1d", &y, &want, &mag, 1e-5);
    let part = transpose(&kn, k, n, 10, 20).unwrap();
    assert_eq!(part, nk[10 * k..20 * k].to_vec());
    assert!(transpose(&kn, k, n, 20, 10).is_err());
}

#[test]
fn runtime_norms() {
    let mut rng = Rng(3);
    for &(rows, d) in &[(1usize, 64usize), (3, 130), (7, 5)] {
        let x = rng.vec(rows * d, 3.0);
        let w = rng.vec(d, 1.0);
        let b = rng.vec(d, 1.0);
        let eps = 1e-5f32;
        let mut out = vec![0f32; rows * d];
        rms_norm(&x, &w, eps, &mut out).unwrap();
        let (mut want, mut mag) = (vec![], vec![]);
        for r in 0..rows {
            let row = &x[r * d..(r + 1) * d];
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
            for c in 0..d {
                let v = row[c] as f64 / (ms + eps as f64).sqrt() * w[c] as f64;
                want.push(v);
                mag.push(v.abs());
            }
        }
        close("rms_norm", &out, &want, &mag, 1e-5);
        layer_norm(&x, &w, &b, eps, &mut out).unwrap();
        let (mut want, mut mag) = (vec![], vec![]);
        for r in 0..rows {
            let row = &x[r * d..(r + 1) * d];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            for c in 0..d {
                let v =
                    (row[c] as f64 - mean) / (var + eps as f64).sqrt() * w[c] as f64 + b[c] as f64;
                want.push(v);
                mag.push(v.abs());
            }
        }
        close("layer_norm", &out, &want, &mag, 1e-5);
    }
    let mut out = vec![0f32; 6];
    let err = rms_norm(&[0.0; 7], &[1.0; 3], 1e-5, &mut out).unwrap_err();
    assert!(err.0.contains("not a multiple"), "{err}");
    assert!(layer_norm(&[0.0; 6], &[1.0; 3], &[0.0; 2], 1e-5, &mut out).is_err());
}

/// erf(x) in f64: Maclaurin series for |x| < 2, the continued fraction of
/// erfc beyond (both converge to full f64 precision there).
fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-18 {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = e^{-a^2}/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
        let mut f = a;
        for k in (1..400).rev() {
            f = a + (k as f64 * 0.5) / f;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

#[test]
fn runtime_activations() {
    let mut rng = Rng(11);
    let x = rng.vec(1003, 8.0);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mag: Vec<f64> = x64.iter().map(|v| v.abs()).collect();

    let mut y = x.clone();
    gelu_erf(&mut y);
    let want: Vec<f64> = x64
        .iter()
        .map(|&v| 0.5 * v * (1.0 + erf64(v / 2f64.sqrt())))
        .collect();
    close("gelu_erf", &y, &want, &mag, 1e-6);
    let mut worst = 0f64;
    for i in -6000..=6000 {
        let v = i as f32 * 1e-3;
        let e = (erf(v) as f64 - erf64(v as f64)).abs();
        worst = worst.max(e);
        assert!(e < 3e-7, "erf({v}): error {e:e}");
    }
    eprintln!("erf: max abs error {worst:.2e} on [-6, 6]");

    let mut y = x.clone();
    gelu_tanh(&mut y);
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let want: Vec<f64> = x64
        .iter()
        .map(|&v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v.powi(3))).tanh()))
        .collect();
    close("gelu_tanh", &y, &want, &mag, 1e-6);

    let up = rng.vec(x.len(), 2.0);
    let mut y = x.clone();
    silu_mul(&mut y, &up).unwrap();
    let want: Vec<f64> = x64
        .iter()
        .zip(&up)
        .map(|(&v, &u)| v / (1.0 + (-v).exp()) * u as f64)
        .collect();
    let mag2: Vec<f64> = x64
        .iter()
        .zip(&up)
        .map(|(&v, &u)| (v * u as f64).abs())
        .collect();
    close("silu_mul", &y, &want, &mag2, 1e-6);
    assert!(silu_mul(&mut y, &up[1..]).is_err());

    let mut y = x.clone();
    relu(&mut y);
    for (a, &b) in y.iter().zip(&x) {
        assert_eq!(*a, b.max(0.0));
    }

    let mut y = x.clone();
    add(&mut y, &up).unwrap();
    for i in 0..x.len() {
        assert_eq!(y[i], x[i] + up[i]);
    }

    // Softmax: rows of 17 with huge offsets must not overflow.
    let n = 17;
    let mut s: Vec<f32> = x[..n * 59]
        .iter()
        .enumerate()
        .map(|(i, &v)| v * 10.0 + if i % 3 == 0 { 1e4 } else { 0.0 })
        .collect();
    let src = s.clone();
    softmax(&mut s, n).unwrap();
    let mut want = vec![];
    for row in src.chunks(n) {
        let mx = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - mx).exp()).collect();
        let z: f64 = e.iter().sum();
        want.extend(e.iter().map(|v| v / z));
    }
    close("softmax", &s, &want, &vec![0.0; want.len()], 1e-6);
    assert!(softmax(&mut s, 16).is_err());
}

/// HF `apply_rotary_pos_emb` on [t, heads, d] with partial rotary, in f64.
fn rope_ref(
    x: &[f32],
    t: usize,
    h: usize,
    d: usize,
    rd: usize,
    inv: &[f32],
    pos0: usize,
) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let half = rd / 2;
    for ti in 0..t {
        // freqs = inv_freq @ position (f32 product), emb = cat(freqs, freqs)
        let emb: Vec<f64> = (0..rd)
            .map(|i| ((pos0 + ti) as f32 * inv[i % half]) as f64)
            .collect();
        for hh in 0..h {
            let base = (ti * h + hh) * d;
            let xr: Vec<f64> = (0..rd).map(|i| x[base + i] as f64).collect();
            for i in 0..rd {
                // rotate_half(x) = cat(-x2, x1)
                let rot = if i < half {
                    -xr[i + half]
                } else {
                    xr[i - half]
                };
                out[base + i] = xr[i] * emb[i].cos() + rot * emb[i].sin();
            }
        }
    }
    out
}

#[test]
fn runtime_rope_full_and_partial_with_offsets() {
    let mut rng = Rng(5);
    for &(t, h, d, rd, pos0, theta) in &[
        (1usize, 4usize, 64usize, 64usize, 0usize, 10000.0f64),
        (7, 3, 32, 8, 13, 10000.0),    // NeoX partial rotary 0.25
        (5, 2, 80, 20, 500, 500000.0), // odd head dim multiple, large positions
        (1, 8, 128, 128, 4095, 500000.0),
    ] {
        let inv: Vec<f32> = (0..rd / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / rd as f64)) as f32)
            .collect();
        let x = rng.vec(t * h * d, 2.0);
        let mut y = x.clone();
        rope(&mut y, t, h, d, rd, &inv, pos0).unwrap();
        let want = rope_ref(&x, t, h, d, rd, &inv, pos0);
        close(
            &format!("rope t={t} d={d} rd={rd} pos0={pos0}"),
            &y,
            &want,
            &vec![2.0; want.len()],
            1e-6,
        );
        for ti in 0..t {
            for hh in 0..h {
                let b = (ti * h + hh) * d;
                assert_eq!(
                    &y[b + rd..b + d],
                    &x[b + rd..b + d],
                    "pass-through dims changed"
                );
            }
        }
    }
    let mut y = vec![0f32; 8];
    assert!(rope(&mut y, 1, 1, 8, 9, &[1.0; 8], 0).is_err());
    assert!(rope(&mut y, 1, 1, 8, 8, &[1.0; 3], 0).is_err());
}

/// Causal attention with an explicit mask and `repeat_kv`, in f64.
#[allow(clippy::too_many_arguments)]
fn attn_ref(
    q: &[f32],
    t: usize,
    hq: usize,
    d: usize,
    k: &[f32],
    v: &[f32],
    hkv: usize,
    past: usize,
) -> Vec<f64> {
    let total = past + t;
    let g = hq / hkv;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f64; t * hq * d];
    for ti in 0..t {
        for h in 0..hq {
            let kvh = h / g;
            let mut s = vec![f64::NEG_INFINITY; total];
            for (j, sj) in s.iter_mut().enumerate() {
                if j <= past + ti {
                    *sj = (0..d)
                        .map(|c| {
                            q[(ti * hq + h) * d + c] as f64 * k[(j * hkv + kvh) * d + c] as f64
                        })
                        .sum::<f64>()
                        * scale;
                }
            }
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|&v| (v - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..d {
                out[(ti * hq + h) * d + c] = (0..total)
                    .map(|j| e[j] / z * v[(j * hkv + kvh) * d + c] as f64)
                    .sum();
            }
        }
    }
    out
}

#[test]
fn runtime_attention_causal_gqa_with_past() {
    let mut rng = Rng(17);
    for &(t, hq, hkv, d, past) in &[
        (1usize, 8usize, 2usize, 64usize, 0usize), // first decode step
        (1, 8, 4, 32, 37),                         // decode with past
        (6, 4, 4, 16, 0),                          // prefill MHA
        (5, 6, 2, 20, 11),                         // chunked prefill with past, GQA 3
        (3, 4, 1, 7, 2),                           // MQA, odd head dim
        (19, 9, 3, 64, 5),                         // SmolLM2's heads, several 4-row tiles
    ] {
        let s_max = past + t + 5;
        let q = rng.vec(t * hq * d, 2.0);
        let mut k = rng.vec(s_max * hkv * d, 2.0);
        let mut v = rng.vec(s_max * hkv * d, 2.0);
        // Positions past the cached length must never be read.
        for i in (past + t) * hkv * d..s_max * hkv * d {
            k[i] = f32::NAN;
            v[i] = f32::NAN;
        }
        let mut out = vec![0f32; t * hq * d];
        attention(
            &q,
            t,
            hq,
            d,
            &k,
            &v,
            hkv,
            past,
            1.0 / (d as f32).sqrt(),
            &mut out,
        )
        .unwrap();
        let want = attn_ref(&q, t, hq, d, &k, &v, hkv, past);
        close(
            &format!("attention t={t} hq={hq} hkv={hkv} d={d} past={past}"),
            &out,
            &want,
            &vec![2.0; want.len()],
            1e-5,
        );
    }
    let mut out = vec![0f32; 8];
    let e = attention(
        &[0.0; 8], 1, 3, 2, &[0.0; 8], &[0.0; 8], 2, 0, 1.0, &mut out,
    )
    .unwrap_err();
    assert!(e.0.contains("multiple"), "{e}");
    let e = attention(
        &[0.0; 4], 1, 2, 2, &[0.0; 4], &[0.0; 4], 2, 1, 1.0, &mut out,
    )
    .unwrap_err();
    assert!(e.0.contains("k_cache"), "{e}");
}

#[test]
fn runtime_embed_and_copy_2d() {
    let table: Vec<u16> = [1.0f32, 2.0, 3.0, -4.0, 0.5, 6.0]
        .iter()
        .map(|&v| f32_to_f16(v))
        .collect();
    let mut out = vec![0f32; 4];
    embed(Weights::F16(&table), 3, 2, &[2, 1], &mut out).unwrap();
    assert_eq!(out, [0.5, 6.0, 3.0, -4.0]);
    let e = embed(Weights::F16(&table), 3, 2, &[3], &mut out).unwrap_err();
    assert!(e.0.contains("token id 3"), "{e}");

    // NeoX fused QKV [t=2, heads=2, 3, d=2] -> K [t, heads, d].
    let qkv: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let mut kk = vec![0f32; 8];
    copy_2d(&qkv, 2, 6, &mut kk, 0, 2, 4, 2).unwrap();
    assert_eq!(kk, [2.0, 3.0, 8.0, 9.0, 14.0, 15.0, 20.0, 21.0]);
    assert!(copy_2d(&qkv, 2, 6, &mut kk, 1, 2, 4, 2).is_err());
    assert!(matmul(
        &[0.0; 3],
        1,
        4,
        Weights::F32(&[0.0; 8]),
        None,
        0,
        2,
        &mut kk,
        0,
        2
    )
    .is_err());
}
