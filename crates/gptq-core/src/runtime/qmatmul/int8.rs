// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! The int8-activation route of [`super::qmatmul`] ([`super::ActQuant::Int8`],
//! llama.cpp's Q8_0 way): each call quantizes every 32-value block of `x`
//! (rows in code order) to `i8` with one f32 scale `d = max|x| / 127`
//! (round half to even), and the weight codes stay unsigned integers, so a
//! block's `Σ x·q` is an exact integer dot product ([`super::i8x16::dot`]).
//! Per output column and group segment it computes
//! `s · (Σ_b d_b·Σ x_q·q − z · Σ_b d_b·Σ x_q)`, the zero handled through the
//! precomputed `d_b · Σ x_q` of each block.
//!
//! Layout ([`Codes`]), built at load from the sorted (act-order: reordered,
//! padded) rows: 4 output columns × 32 input rows per block, as 8 vectors
//! of 16 bytes (byte `4c + i` of vector `v`: column `c`, row `4v + i`), so
//! one dot product serves 4 columns × 4 rows and every `i32` lane is one
//! column. 2-bit codes pack 4 vectors per 16 bytes (bits `2j`), 3- and
//! 4-bit codes 2 (nibbles), 8-bit codes 1; vector `v` is in the 16 bytes
//! `v mod S` at field `v / S`, `S` the storage bits. An 8-bit code `q` is
//! fed as `q & 127` and twice `64·(q >> 7)` (the dot's weight side is 7 bits).
//!
//! Each output column is computed by the same operations whatever the tile
//! it falls in, the row count `M` or the thread split, so results are
//! bit-identical across thread counts, and between decode and prefill.

use super::i8x16::{dot, B16, D4};
use super::{field, Order, Out, QWeights, QuantTensors, Seg, KB, NB, PAD};
use crate::runtime::simd::F4;

/// Output columns per dot product (one per `i32` lane).
const QC: usize = 4;

/// Codes of output columns `n0..n1` in the int8 kernel's layout.
pub(super) struct Codes {
    /// Storage bits per code: 2, 4 (also 3-bit codes) or 8.
    sb: u32,
    /// 32-row blocks.
    nkb: usize,
    /// `[quad][block][16·sb]`.
    data: Vec<u8>,
}

impl Codes {
    /// Repacks columns `n0..n1` of `t`; row `kk` of the code order is
    /// checkpoint row `row_of[kk]` ([`PAD`]: code 0).
    pub(super) fn new(t: &QuantTensors<'_>, n0: usize, n1: usize, row_of: &[u32]) -> Codes {
        let sb = match t.bits {
            2 => 2,
            3 | 4 => 4,
            _ => 8,
        };
        let (kp, nq) = (row_of.len(), (n1 - n0).div_ceil(QC));
        let (nkb, bb) = (kp / KB, 16 * sb as usize);
        let mut data = vec![0u8; nq * nkb * bb];
        for q in 0..nq {
            for (kk, &r) in row_of.iter().enumerate() {
                if r == PAD {
                    continue;
                }
                let (j, v) = (kk % KB, kk % KB / 4);
                let base = (q * nkb + kk / KB) * bb + (v % sb as usize) * 16 + j % 4;
                let shift = (v / sb as usize) as u32 * sb;
                for c in 0..QC.min(n1 - n0 - q * QC) {
                    let code = field(t.qweight, n0 + q * QC + c, t.n, r as usize, t.bits);
                    data[base + 4 * c] |= (code << shift) as u8;
                }
            }
        }
        Codes { sb, nkb, data }
    }

    /// Bytes held.
    pub(super) fn byte_len(&self) -> usize {
        self.data.len()
    }
}

/// `x` quantized per 32-value block: `q [m][kp]`, `d [m][kp/32]`, and per
/// row and segment `Σ_b d_b · Σ q` (`seg [m][segments]`).
struct Acts {
    q: Vec<i8>,
    d: Vec<f32>,
    seg: Vec<f32>,
}

fn quantize(xs: &[f32], m: usize, kp: usize, segs: &[Seg]) -> Acts {
    let nkb = kp / KB;
    let mut q = vec![0i8; m * kp];
    let mut d = vec![0f32; m * nkb];
    let mut bsum = vec![0f32; m * nkb];
    for (b, (xb, qb)) in xs[..m * kp]
        .chunks_exact(KB)
        .zip(q.chunks_exact_mut(KB))
        .enumerate()
    {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let db = amax / 127.0;
        let id = if db > 0.0 { 1.0 / db } else { 0.0 };
        let mut s = 0i32;
        for (o, &v) in qb.iter_mut().zip(xb) {
            *o = (v * id).round_ties_even() as i8;
            s += *o as i32;
        }
        d[b] = db;
        bsum[b] = s as f32 * db;
    }
    let mut seg = vec![0f32; m * segs.len()];
    for r in 0..m {
        for (si, sg) in segs.iter().enumerate() {
            let blocks = &bsum[r * nkb + sg.b0 as usize..r * nkb + sg.b1 as usize];
            seg[r * segs.len() + si] = blocks.iter().sum();
        }
    }
    Acts { q, d, seg }
}

/// The vectors held in 16 code bytes: `[field 0, field 1, …]` for 2 and 4
/// storage bits, `[q & 127, 64·(q >> 7)]` for 8.
#[inline(always)]
fn fields<const SB: u32>(w: B16) -> [B16; 4] {
    match SB {
        2 => [
            w.field::<0, 2>(),
            w.field::<2, 2>(),
            w.field::<4, 2>(),
            w.field::<6, 2>(),
        ],
        4 => [w.field::<0, 4>(), w.field::<4, 4>(), w, w],
        _ => [w.field::<0, 7>(), w.top_as_64(), w, w],
    }
}

/// `acc[r][c] += Σ x_q·q` over one 32-row block for rows `xp` and column
/// quads `wp`.
///
/// # Safety
/// `wp[c]..+16·SB` and `xp[r]..+32` readable.
#[inline(always)]
unsafe fn block<const SB: u32, const R: usize, const C: usize>(
    wp: &[*const u8; C],
    xp: &[*const i8; R],
    acc: &mut [[D4; C]; R],
) {
    let sb = SB as usize;
    for t in 0..sb {
        for c in 0..C {
            let f = fields::<SB>(B16::load(wp[c].add(t * 16)));
            for r in 0..R {
                let a = &mut acc[r][c];
                if SB == 8 {
                    let x = B16::splat4(xp[r].add(4 * t));
                    *a = dot(dot(dot(*a, x, f[0]), x, f[1]), x, f[1]);
                } else {
                    for (jj, fv) in f.iter().enumerate().take(8 / sb) {
                        *a = dot(*a, B16::splat4(xp[r].add(4 * (t + jj * sb))), *fv);
                    }
                }
            }
        }
    }
}

/// Scale and zero (f32) of group `g` for the 4 columns of quad `q`.
#[inline(always)]
fn sz4(w: &QWeights, q: usize, g: usize) -> (F4, F4) {
    let o = ((q * QC / NB) * w.groups + g) * NB + q * QC % NB;
    assert!(o + QC <= w.scales.len());
    // SAFETY: checked above; scales and zeros have the same length.
    unsafe {
        let s = F4::load_f16(w.scales.as_ptr().add(o));
        let z = F4::load_u8(w.zeros.as_ptr().add(o)).add(F4::splat(w.zoff));
        (s, z)
    }
}

/// Rows `i0..i0 + R`, column quads `q0..q0 + C` of the output.
#[allow(clippy::too_many_arguments)]
fn tile<const SB: u32, const R: usize, const C: usize>(
    w: &QWeights,
    codes: &Codes,
    a: &Acts,
    segs: &[Seg],
    i0: usize,
    q0: usize,
    bias: Option<&[f32]>,
    o: &mut Out<'_>,
) {
    let (kp, nkb, bb) = (w.kp, codes.nkb, 16 * SB as usize);
    assert!((q0 + C) * nkb * bb <= codes.data.len() && (i0 + R) * kp <= a.q.len());
    let mut y = [[F4::zero(); C]; R];
    for (si, sg) in segs.iter().enumerate() {
        let mut accf = [[F4::zero(); C]; R];
        for kb in sg.b0 as usize..sg.b1 as usize {
            let mut acc = [[D4::zero(); C]; R];
            // SAFETY: quads q0..q0+C and rows i0..i0+R are in range (checked
            // above) and kb < nkb.
            unsafe {
                let wp =
                    core::array::from_fn(|c| codes.data.as_ptr().add(((q0 + c) * nkb + kb) * bb));
                let xp = core::array::from_fn(|r| a.q.as_ptr().add((i0 + r) * kp + kb * KB));
                block::<SB, R, C>(&wp, &xp, &mut acc);
            }
            for r in 0..R {
                let d = F4::splat(a.d[(i0 + r) * nkb + kb]);
                for c in 0..C {
                    accf[r][c] = accf[r][c].fma(acc[r][c].to_f32(), d);
                }
            }
        }
        for c in 0..C {
            let (s, z) = sz4(w, q0 + c, sg.g as usize);
            for r in 0..R {
                let t = F4::splat(a.seg[(i0 + r) * segs.len() + si]);
                y[r][c] = y[r][c].fma(s, accf[r][c].sub(z.mul(t)));
            }
        }
    }
    for (r, yr) in y.iter().enumerate() {
        for (c, v) in yr.iter().enumerate() {
            o.put4(i0 + r, (q0 + c) * QC, v, bias);
        }
    }
}

impl Out<'_> {
    /// Writes 4 values of row `i` at columns `c0..c0 + 4` (plus the bias),
    /// clipped to `[n0, n1)`.
    #[inline(always)]
    fn put4(&mut self, i: usize, c0: usize, v: &F4, bias: Option<&[f32]>) {
        let mut t = [0f32; QC];
        // SAFETY: t holds 4 values.
        unsafe { v.store(t.as_mut_ptr()) };
        let base = self.y_off + i * self.ldy;
        for c in self.n0.max(c0)..self.n1.min(c0 + QC) {
            self.y[base + c - self.n0] = t[c - c0] + bias.map_or(0.0, |b| b[c]);
        }
    }
}

/// Rows `i0..i0 + r` (`r ≤ 4`) for column quads `q0..q0 + c` (`c` 1, 2 or 4).
#[allow(clippy::too_many_arguments)]
fn tile_dyn<const SB: u32>(
    w: &QWeights,
    codes: &Codes,
    a: &Acts,
    segs: &[Seg],
    (i0, r): (usize, usize),
    (q0, c): (usize, usize),
    bias: Option<&[f32]>,
    o: &mut Out<'_>,
) {
    macro_rules! go {
        ($($r:literal, $c:literal);*) => {
            match (r, c) {
                $(($r, $c) => tile::<SB, $r, $c>(w, codes, a, segs, i0, q0, bias, o),)*
                _ => unreachable!("tile {r}×{c}"),
            }
        };
    }
    go!(1, 1; 1, 2; 1, 4; 2, 1; 2, 2; 3, 1; 3, 2; 4, 1; 4, 2)
}

/// `y = x · Wᵀ (+ bias)` through the int8 route; `xs` in code order
/// (`[m][kp]`).
pub(super) fn run(
    xs: &[f32],
    m: usize,
    w: &QWeights,
    codes: &Codes,
    bias: Option<&[f32]>,
    o: &mut Out<'_>,
) {
    let Order::Sorted { segs, .. } = &w.order else {
        unreachable!("the int8 route always sorts rows by group")
    };
    let a = quantize(xs, m, w.kp, segs);
    let (q0, q1) = (o.n0 / QC, o.n1.div_ceil(QC));
    // Decode: 4 quads (16 columns) share each x load; prefill: 4 rows × 2
    // quads share each code unpacking.
    let ct = if m == 1 { 4 } else { 2 };
    let mut q = q0;
    while q < q1 {
        let c = if q + ct <= q1 { ct } else { 1 };
        let mut i = 0;
        while i < m {
            let r = 4.min(m - i);
            match codes.sb {
                2 => tile_dyn::<2>(w, codes, &a, segs, (i, r), (q, c), bias, o),
                4 => tile_dyn::<4>(w, codes, &a, segs, (i, r), (q, c), bias, o),
                _ => tile_dyn::<8>(w, codes, &a, segs, (i, r), (q, c), bias, o),
            }
            i += r;
        }
        q += c;
    }
}
