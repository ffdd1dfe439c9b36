// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The fused GPTQ dequant-matmul against a scalar dequantize-then-matmul
//! reference (f64), on random packed layers: every bit width × group size ×
//! act-order × zero format × act-order mode × decode/prefill row count, with
//! column ranges that do not fall on the kernel's 8-column blocks.

use gptq_core::dtype::{f16_to_f32, f32_to_f16};
use gptq_core::pack::{pack_cols, pack_rows, unpack_cols, unpack_rows};
use gptq_core::runtime::{qmatmul, ActQuant, QMode, QWeights, QuantTensors};

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
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random packed layer, as a checkpoint would hold it.
struct Layer {
    qweight: Vec<i32>,
    qzeros: Vec<i32>,
    scales: Vec<u16>,
    g_idx: Option<Vec<i32>>,
    k: usize,
    n: usize,
    bits: u32,
    v2: bool,
}

impl Layer {
    fn random(
        rng: &mut Rng,
        k: usize,
        n: usize,
        bits: u32,
        group: usize,
        act: bool,
        v2: bool,
    ) -> Layer {
        let maxq = (1u32 << bits) - 1;
        let g = k.div_ceil(group);
        let codes: Vec<u32> = (0..k * n)
            .map(|_| rng.below(maxq as usize + 1) as u32)
            .collect();
        // Stored fields: any value (v1 then means zero = field + 1, up to 2^bits).
        let fields: Vec<u32> = (0..g * n)
            .map(|_| rng.below(maxq as usize + 1) as u32)
            .collect();
        let scales: Vec<u16> = (0..g * n)
            .map(|_| f32_to_f16(0.002 + 0.05 * rng.f().abs()))
            .collect();
        let g_idx = if act {
            // AutoGPTQ act-order: g_idx[perm[i]] = i / group for a permutation perm.
            let mut perm: Vec<usize> = (0..k).collect();
            for i in (1..k).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            let mut gi = vec![0i32; k];
            for (i, &p) in perm.iter().enumerate() {
                gi[p] = (i / group) as i32;
            }
            Some(gi)
        } else if v2 && k.is_multiple_of(group) {
            None
        } else {
            Some((0..k).map(|i| (i / group) as i32).collect())
        };
        Layer {
            qweight: pack_rows(&codes, k, n, bits).unwrap(),
            qzeros: pack_cols(&fields, g, n, bits).unwrap(),
            scales,
            g_idx,
            k,
            n,
            bits,
            v2,
        }
    }

    fn tensors(&self) -> QuantTensors<'_> {
        QuantTensors {
            qweight: &self.qweight,
            qzeros: &self.qzeros,
            scales: &self.scales,
            g_idx: self.g_idx.as_deref(),
            k: self.k,
            n: self.n,
            bits: self.bits,
            v2: self.v2,
        }
    }

    /// `W [n, k]` dequantized from the packed tensors, `s·(q − z)` in f32.
    fn dequantize(&self) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        let g = self.scales.len() / n;
        let q = unpack_rows(&self.qweight, k, n, self.bits).unwrap();
        let z = unpack_cols(&self.qzeros, g, n, self.bits).unwrap();
        let mut w = vec![0f32; n * k];
        for kk in 0..k {
            let gi = match &self.g_idx {
                Some(v) => v[kk] as usize,
                None => kk / (k / g),
            };
            for j in 0..n {
                let zero = z[gi * n + j] as f32 + if self.v2 { 0.0 } else { 1.0 };
                w[j * k + kk] = f16_to_f32(self.scales[gi * n + j]) * (q[kk * n + j] as f32 - zero);
            }
        }
        w
    }
}

/// Runs qmatmul on columns `h0..h1` of the layer (held) and `c0..c1` of those
/// (computed), written at their place in a wider output, and checks every
/// value against the f64 reference: `|got − want| ≤ 1e-5 · Σ_k |x·w|` (+ a
/// tiny absolute floor); untouched outputs must stay untouched.
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    l: &Layer,
    w: &[f32],
    m: usize,
    mode: QMode,
    (h0, h1): (usize, usize),
    (c0, c1): (usize, usize),
    rng: &mut Rng,
) -> f64 {
    let k = l.k;
    let q = QWeights::new(&l.tensors(), h0, h1, mode).unwrap();
    assert_eq!(q.rows(), h1 - h0);
    let x: Vec<f32> = (0..m * k).map(|_| rng.f()).collect();
    let bias: Vec<f32> = (0..h1 - h0).map(|_| rng.f()).collect();
    let ldy = (c1 - c0) + 5;
    let y_off = 2;
    let sentinel = 1234.5f32;
    let mut y = vec![sentinel; y_off + (m - 1) * ldy + (c1 - c0) + 3];
    qmatmul(&x, m, k, &q, Some(&bias), c0, c1, &mut y, y_off, ldy).unwrap();
    let mut worst = 0f64;
    for i in 0..m {
        for j in c0..c1 {
            let row = &w[(h0 + j) * k..(h0 + j + 1) * k];
            let (mut want, mut mag) = (bias[j] as f64, bias[j].abs() as f64);
            for kk in 0..k {
                let p = x[i * k + kk] as f64 * row[kk] as f64;
                want += p;
                mag += p.abs();
            }
            let got = y[y_off + i * ldy + j - c0] as f64;
            let err = (got - want).abs() / (mag + 1e-6);
            worst = worst.max(err);
            assert!(
                err <= 1e-5,
                "{what}: row {i} col {j}: got {got} want {want} (rel err {err:e})"
            );
        }
    }
    for (idx, &v) in y.iter().enumerate() {
        let inside = idx >= y_off && {
            let r = (idx - y_off) / ldy;
            let c = (idx - y_off) % ldy;
            r < m && c < c1 - c0
        };
        if !inside {
            assert_eq!(
                v, sentinel,
                "{what}: y[{idx}] outside the output was written"
            );
        }
    }
    worst
}

#[test]
fn every_bits_group_actorder_format_and_mode_matches_the_reference() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut worst = 0f64;
    let mut cases = 0;
    for bits in [2u32, 3, 4, 8] {
        for group in [32usize, 128, usize::MAX] {
            for act in [false, true] {
                for v2 in [false, true] {
                    // K = 320: with g128 the last group is short (64 rows).
                    let (k, n) = (320usize, 128usize);
                    let g = if group == usize::MAX { k } else { group };
                    let l = Layer::random(&mut rng, k, n, bits, g, act, v2);
                    let w = l.dequantize();
                    for mode in [QMode::Auto, QMode::Reorder, QMode::Gather] {
                        for m in [1usize, 3, 4, 17] {
                            // Held ranges of 40 and 72 columns (not multiples
                            // of 8 at the start), and the full layer.
                            for (h0, h1) in [(0, n), (13, 53), (32, 104)] {
                                let held = h1 - h0;
                                for (c0, c1) in [(0, held), (3, held - 5)] {
                                    let what = format!(
                                        "bits {bits} group {g} act {act} v2 {v2} {mode:?} m {m} held {h0}..{h1} cols {c0}..{c1}"
                                    );
                                    let e =
                                        check(&what, &l, &w, m, mode, (h0, h1), (c0, c1), &mut rng);
                                    worst = worst.max(e);
                                    cases += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("{cases} cases, max relative error {worst:.2e}");
}

#[test]
fn groups_that_are_not_multiples_of_32_pad_or_gather() {
    // group 48 with act-order: reordering pads every group to 64 rows.
    let mut rng = Rng(99);
    for bits in [3u32, 4] {
        let l = Layer::random(&mut rng, 192, 64, bits, 48, true, true);
        let w = l.dequantize();
        for mode in [QMode::Auto, QMode::Reorder, QMode::Gather] {
            for m in [1usize, 2, 5] {
                check("group 48", &l, &w, m, mode, (0, 64), (0, 64), &mut rng);
            }
        }
        // 192 → 256 rows padded is more than a quarter extra: Auto gathers.
        let q = QWeights::new(&l.tensors(), 0, 64, QMode::Auto).unwrap();
        assert_eq!(q.mode(), QMode::Gather);
        let q = QWeights::new(&l.tensors(), 0, 64, QMode::Reorder).unwrap();
        assert_eq!(q.mode(), QMode::Reorder);
    }
}

#[test]
fn packed_size_is_close_to_the_checkpoint() {
    let mut rng = Rng(7);
    let l = Layer::random(&mut rng, 1024, 256, 4, 128, false, false);
    let q = QWeights::new(&l.tensors(), 0, 256, QMode::Auto).unwrap();
    // 4 bits per weight, 3 bytes per group and column, small tables.
    let expect = 1024 * 256 / 2 + 8 * 256 * 3;
    assert!(q.byte_len() >= expect && q.byte_len() <= expect + 256);
    assert_eq!(q.bits(), 4);
    assert_eq!(q.cols(), 1024);
}

#[test]
fn bad_inputs_are_rejected_with_the_tensor_named() {
    let mut rng = Rng(3);
    let l = Layer::random(&mut rng, 64, 32, 4, 32, false, true);
    let mut t = l.tensors();
    t.qweight = &l.qweight[1..];
    let e = QWeights::new(&t, 0, 32, QMode::Auto).err().unwrap();
    assert!(e.0.contains("qweight"), "{e}");
    let bad = [0i32, 5].repeat(32);
    let mut t = l.tensors();
    t.g_idx = Some(&bad);
    let e = QWeights::new(&t, 0, 32, QMode::Auto).err().unwrap();
    assert!(e.0.contains("g_idx[1] = 5"), "{e}");
    let e = QWeights::new(&l.tensors(), 0, 33, QMode::Auto)
        .err()
        .unwrap();
    assert!(e.0.contains("column range"), "{e}");
    let q = QWeights::new(&l.tensors(), 0, 32, QMode::Auto).unwrap();
    let mut y = vec![0f32; 32];
    let e = qmatmul(&[0.0; 32], 1, 32, &q, None, 0, 32, &mut y, 0, 32)
        .err()
        .unwrap();
    assert!(e.0.contains("K = 64"), "{e}");
}

/// Rows in the int8 route's code order: sorted by group (stably), each
/// group's run padded to 32 (`None`: a padding row).
fn code_order(l: &Layer) -> Vec<Option<usize>> {
    let g = l.scales.len() / l.n;
    let gi: Vec<usize> = (0..l.k)
        .map(|kk| match &l.g_idx {
            Some(v) => v[kk] as usize,
            None => kk / (l.k / g),
        })
        .collect();
    let mut order = Vec::new();
    for grp in 0..g {
        order.extend((0..l.k).filter(|&kk| gi[kk] == grp).map(Some));
        while order.len() % 32 != 0 {
            order.push(None);
        }
    }
    order
}

/// `x` row quantized as the int8 route does it: per 32 values in code order,
/// `d = max|x| / 127`, `q = round_half_even(x / d)`; returns `x̂ = d·q` in the
/// checkpoint's row order and the bound `Σ_b d_b/2 · Σ_{i∈b} |w_i|` weights
/// for column `w` (see [`int8_bound`]).
fn quantize_row(x: &[f32], order: &[Option<usize>]) -> (Vec<f64>, Vec<f64>) {
    let (mut xh, mut half) = (vec![0f64; x.len()], vec![0f64; x.len()]);
    for blk in order.chunks(32) {
        let amax = blk.iter().flatten().fold(0f32, |a, &kk| a.max(x[kk].abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for &kk in blk.iter().flatten() {
            xh[kk] = d as f64 * (x[kk] * id).round_ties_even() as f64;
            half[kk] = d as f64 / 2.0;
        }
    }
    (xh, half)
}

/// The int8 route (`ActQuant::Int8`) on held columns `h0..h1`: against
/// `x̂ · W` in f64 (x̂ the int8-quantized x) within 1e-5 of `Σ|x̂·w|`, and
/// against the exact `x · W` within the quantization bound
/// `Σ_k d_b(k)/2 · |w_k|` (+ 1e-5 of `Σ|x·w|`). Returns the worst error
/// relative to `Σ|x·w|` against the exact product.
fn check_int8(
    what: &str,
    l: &Layer,
    w: &[f32],
    m: usize,
    (h0, h1): (usize, usize),
    rng: &mut Rng,
) -> f64 {
    let k = l.k;
    let q = QWeights::with_act(&l.tensors(), h0, h1, QMode::Auto, ActQuant::Int8).unwrap();
    assert_eq!(q.act_quant(), ActQuant::Int8);
    let order = code_order(l);
    let x: Vec<f32> = (0..m * k)
        .map(|_| rng.f() * if rng.below(8) == 0 { 8.0 } else { 1.0 })
        .collect();
    let bias: Vec<f32> = (0..h1 - h0).map(|_| rng.f()).collect();
    let mut y = vec![0f32; m * (h1 - h0)];
    qmatmul(&x, m, k, &q, Some(&bias), 0, h1 - h0, &mut y, 0, h1 - h0).unwrap();
    let mut worst = 0f64;
    for i in 0..m {
        let (xh, half) = quantize_row(&x[i * k..(i + 1) * k], &order);
        for j in 0..h1 - h0 {
            let row = &w[(h0 + j) * k..(h0 + j + 1) * k];
            let b = bias[j] as f64;
            let (mut want_q, mut mag_q, mut exact, mut mag, mut bound) =
                (b, b.abs(), b, b.abs(), 0f64);
            for kk in 0..k {
                let (wv, xv) = (row[kk] as f64, x[i * k + kk] as f64);
                want_q += xh[kk] * wv;
                mag_q += (xh[kk] * wv).abs();
                exact += xv * wv;
                mag += (xv * wv).abs();
                bound += half[kk] * wv.abs();
            }
            let got = y[i * (h1 - h0) + j] as f64;
            assert!(
                (got - want_q).abs() <= 1e-5 * mag_q + 1e-6,
                "{what}: row {i} col {j}: got {got}, int8 reference {want_q}"
            );
            assert!(
                (got - exact).abs() <= bound * (1.0 + 1e-6) + 1e-5 * mag + 1e-6,
                "{what}: row {i} col {j}: got {got}, exact {exact}, bound {bound}"
            );
            worst = worst.max((got - exact).abs() / (mag + 1e-6));
        }
    }
    worst
}

#[test]
fn int8_route_matches_the_int8_reference_and_the_exact_product_within_bound() {
    let mut rng = Rng(0x0dd_c0de);
    let (mut worst, mut cases) = (0f64, 0);
    for bits in [2u32, 3, 4, 8] {
        for group in [32usize, 64, 128, usize::MAX] {
            for act in [false, true] {
                for v2 in [false, true] {
                    let (k, n) = (320usize, 96usize);
                    let g = if group == usize::MAX { k } else { group };
                    let l = Layer::random(&mut rng, k, n, bits, g, act, v2);
                    let w = l.dequantize();
                    for m in [1usize, 2, 5, 9] {
                        for (h0, h1) in [(0, n), (13, 53), (32, 96)] {
                            let what = format!("int8 bits {bits} group {g} act {act} v2 {v2} m {m} held {h0}..{h1}");
                            worst = worst.max(check_int8(&what, &l, &w, m, (h0, h1), &mut rng));
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    // Group 48 with act-order: padded runs of 64 rows.
    let l = Layer::random(&mut rng, 192, 64, 4, 48, true, true);
    let w = l.dequantize();
    worst = worst.max(check_int8("int8 group 48", &l, &w, 3, (0, 64), &mut rng));
    eprintln!("int8: {cases} cases, max error vs exact relative to Σ|x·w|: {worst:.2e}");
}

#[test]
fn int8_route_is_bit_identical_for_any_split_and_row_count() {
    let mut rng = Rng(42);
    for bits in [3u32, 4, 8] {
        let l = Layer::random(&mut rng, 256, 160, bits, 64, true, false);
        let (k, n, m) = (l.k, l.n, 7);
        let x: Vec<f32> = (0..m * k).map(|_| rng.f()).collect();
        let full = QWeights::with_act(&l.tensors(), 0, n, QMode::Gather, ActQuant::Int8).unwrap();
        let mut want = vec![0f32; m * n];
        qmatmul(&x, m, k, &full, None, 0, n, &mut want, 0, n).unwrap();
        // Parts as the thread split makes them (multiples of 32) and odd ones.
        for bounds in [
            vec![0, 64, 160],
            vec![0, 32, 96, 128, 160],
            vec![0, 13, 77, 160],
        ] {
            let mut y = vec![0f32; m * n];
            for p in bounds.windows(2) {
                let part =
                    QWeights::with_act(&l.tensors(), p[0], p[1], QMode::Auto, ActQuant::Int8)
                        .unwrap();
                qmatmul(&x, m, k, &part, None, 0, p[1] - p[0], &mut y, p[0], n).unwrap();
            }
            assert!(
                y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "bits {bits} split {bounds:?}"
            );
        }
        // Each row alone (decode) equals its row of the batch (prefill).
        for i in 0..m {
            let mut y = vec![0f32; n];
            qmatmul(
                &x[i * k..(i + 1) * k],
                1,
                k,
                &full,
                None,
                0,
                n,
                &mut y,
                0,
                n,
            )
            .unwrap();
            assert!(
                y.iter()
                    .zip(&want[i * n..(i + 1) * n])
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "bits {bits} row {i}"
            );
        }
    }
}
