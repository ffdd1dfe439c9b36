// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The fused GPTQ dequant-matmul against a scalar dequantize-then-matmul
//! reference (f64), on random packed layers: every bit width × group size ×
//! act-order × zero format × act-order mode × decode/prefill row count, with
//! column ranges that do not fall on the kernel's 8-column blocks.

use gptq_core::dtype::{f16_to_f32, f32_to_f16};
use gptq_core::pack::{pack_cols, pack_rows, unpack_cols, unpack_rows};
use gptq_core::runtime::{qmatmul, QMode, QWeights, QuantTensors};

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
