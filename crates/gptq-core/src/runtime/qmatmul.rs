// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Fused GPTQ dequant-matmul: `y = x · Wᵀ (+ bias)` with `W` kept packed at
//! 2, 3, 4 or 8 bits and never expanded to f32 as a whole.
//!
//! [`QWeights::new`] takes a layer's checkpoint tensors (`qweight`, `qzeros`,
//! `scales`, `g_idx`; reference §1.2–1.5) and builds, for the output columns
//! `n0..n1` only, an internal layout:
//!
//! - codes in blocks of 8 output columns × 32 input rows: `bits` words per
//!   column, the 32 codes of a column as one little-endian bitstream (the
//!   checkpoint's own packing, 3-bit codes straddling words included), the 8
//!   columns interleaved so that word `i` of the block is two `v128`s;
//! - scales as f16 bits and zero points as the stored `u8` field (plus 1 for
//!   the v1 "gptq" format, AutoGPTQ's `(field & maxq) + 1`), `[block][G][8]`.
//!
//! Act-order `g_idx` (not monotone) has two modes ([`QMode`]):
//!
//! - [`QMode::Reorder`] (ExLlama's way): input rows are sorted by group at load
//!   (stably) and each group's run is padded to a multiple of 32 rows; the
//!   kernel gathers `x[perm[k]]` into a scratch row first. Every 32-row block
//!   then has one group, so the decode kernel sums `Σ x·q` and `Σ x` per group
//!   and applies `s·(Σ x·q − z·Σ x)` once per group.
//! - [`QMode::Gather`]: no reordering; every input row looks its group's
//!   scale and zero up through `g_idx` and dequantizes `s·(q − z)` in
//!   registers.
//!
//! `M < 4` (decode) runs a GEMV that unpacks codes in registers, vectorized
//! over 8 output columns, 4 column blocks at a time, with the `M` rows sharing
//! each unpacked code. A code is masked in place and converted with the power
//! of two it carries left in (one shift serves the codes 8 bits apart), and
//! `x` is pre-scaled per code position to match, so most codes cost a mask, a
//! convert and a multiply-add. `M ≥ 4` (prefill) dequantizes one `KC × 128` tile of `W`
//! into the f32 panels of [`mod@super::matmul`]'s 4×8 micro-kernel and reuses it.
//! All accumulation is f32; results equal a dequantize-then-f32-matmul up to
//! summation order.
//!
//! [`ActQuant::Int8`] (chosen at load, [`QWeights::with_act`]) replaces all
//! of this with llama.cpp's route: `x` quantized to `i8` per 32 values per
//! call, codes kept as integers in a dot-product layout, integer dot
//! products (see `qmatmul/int8.rs`). It changes the numerics.

mod i8x16;
mod int8;

use super::matmul::{check_out, micro, GEMM_MIN_M, KC, MR, NR};
use super::simd::{F4, I4};
use super::{ensure, need, size, KernelError};
use crate::dtype::f16_to_f32;

/// Output columns per code block (one micro-kernel panel).
const NB: usize = NR;
/// Input rows per code block.
const KB: usize = 32;
/// Code blocks of 8 columns per GEMM tile (128 columns).
const TILE_BLOCKS: usize = 16;
/// Column blocks per GEMV pass.
const GEMV_C: usize = 4;
/// Marks a padding row in `perm`.
const PAD: u32 = u32::MAX;

/// How act-order `g_idx` is handled (see the module doc).
///
/// # Examples
/// ```
/// use gptq_core::runtime::qmatmul::QMode;
/// assert_eq!(QMode::from_code(2), Some(QMode::Gather));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QMode {
    /// [`QMode::Reorder`] unless padding the groups to 32 rows would add more
    /// than a quarter of `K`, then [`QMode::Gather`].
    Auto,
    /// Sort input rows by group at load, gather `x` per call.
    Reorder,
    /// Keep the order, look scale and zero up per input row.
    Gather,
}

impl QMode {
    /// `0` Auto, `1` Reorder, `2` Gather (the wasm binding's encoding).
    pub fn from_code(c: u32) -> Option<QMode> {
        match c {
            0 => Some(QMode::Auto),
            1 => Some(QMode::Reorder),
            2 => Some(QMode::Gather),
            _ => None,
        }
    }
}

/// The precision of the activations in [`qmatmul()`] (chosen at load).
///
/// # Examples
/// ```
/// use gptq_core::runtime::qmatmul::ActQuant;
/// assert_eq!(ActQuant::from_code(1), Some(ActQuant::Int8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActQuant {
    /// Exact: f32 activations times dequantized f32 weights.
    F32,
    /// `x` quantized to `i8` per 32 values (one f32 scale each, like
    /// llama.cpp's Q8_0), integer dot products with the codes.
    Int8,
}

impl ActQuant {
    /// `0` F32, `1` Int8 (the wasm binding's encoding).
    pub fn from_code(c: u32) -> Option<ActQuant> {
        match c {
            0 => Some(ActQuant::F32),
            1 => Some(ActQuant::Int8),
            _ => None,
        }
    }
}

/// The checkpoint tensors of one GPTQ linear, borrowed.
///
/// # Examples
/// ```
/// use gptq_core::runtime::qmatmul::QuantTensors;
/// let (qweight, qzeros, scales) = (vec![0i32; 4 * 32], vec![0i32; 4], vec![0x3c00u16; 32]);
/// let t = QuantTensors { qweight: &qweight, qzeros: &qzeros, scales: &scales, g_idx: None, k: 32, n: 32, bits: 4, v2: true };
/// assert_eq!(t.groups().unwrap(), 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct QuantTensors<'a> {
    /// `[k·bits/32, n]`, packed along K.
    pub qweight: &'a [i32],
    /// `[G, n·bits/32]`, packed along N.
    pub qzeros: &'a [i32],
    /// `[G, n]` f16 bit patterns.
    pub scales: &'a [u16],
    /// `[k]` group of each input row, or `None` for `g_idx[k] = k / (k/G)`.
    pub g_idx: Option<&'a [i32]>,
    /// Input features (a multiple of 32).
    pub k: usize,
    /// Output features (a multiple of 32).
    pub n: usize,
    /// 2, 3, 4 or 8.
    pub bits: u32,
    /// Zero format: `true` for "gptq_v2" (stored as is), `false` for v1
    /// ("gptq", stored `zero − 1`).
    pub v2: bool,
}

impl QuantTensors<'_> {
    /// Number of groups `G`, checked against every tensor's length.
    ///
    /// # Errors
    /// [`KernelError`] naming the tensor whose size does not fit.
    pub fn groups(&self) -> Result<usize, KernelError> {
        let (k, n, bits) = (self.k, self.n, self.bits);
        ensure(matches!(bits, 2 | 3 | 4 | 8), || {
            format!("gptq: bits must be 2, 3, 4 or 8, got {bits}")
        })?;
        ensure(k % 32 == 0 && n % 32 == 0 && k > 0 && n > 0, || {
            format!("gptq: K = {k} and N = {n} must be positive multiples of 32")
        })?;
        let rows = k / 32 * bits as usize;
        ensure(
            self.qweight.len() == size("gptq qweight", &[rows, n])?,
            || {
                format!(
                    "gptq qweight: has {} elements, expected [K·bits/32, N] = [{rows}, {n}]",
                    self.qweight.len()
                )
            },
        )?;
        let zc = n / 32 * bits as usize;
        let g = self.qzeros.len() / zc;
        ensure(g >= 1 && g * zc == self.qzeros.len() && g <= k, || {
            format!(
                "gptq qzeros: has {} elements, expected [G, N·bits/32] = [G, {zc}] with 1 ≤ G ≤ {k}",
                self.qzeros.len()
            )
        })?;
        ensure(self.scales.len() == g * n, || {
            format!(
                "gptq scales: has {} elements, expected [G, N] = [{g}, {n}]",
                self.scales.len()
            )
        })?;
        match self.g_idx {
            Some(gi) => {
                ensure(gi.len() == k, || {
                    format!("gptq g_idx: has {} elements, expected K = {k}", gi.len())
                })?;
                if let Some(i) = gi.iter().position(|&v| v < 0 || v as usize >= g) {
                    return Err(KernelError(format!(
                        "gptq g_idx: g_idx[{i}] = {} is outside 0..{}",
                        gi[i],
                        g - 1
                    )));
                }
            }
            None => ensure(k % g == 0, || {
                format!("gptq: no g_idx and K = {k} is not a multiple of G = {g}")
            })?,
        }
        Ok(g)
    }
}

/// A run of 32-row code blocks `b0..b1` that share group `g` (sorted order).
#[derive(Clone, Copy, Debug)]
struct Seg {
    g: u32,
    b0: u32,
    b1: u32,
}

enum Order {
    /// Rows sorted by group (padded); `perm[k']` is the original row or
    /// [`PAD`]; `None` when the order is the identity without padding.
    Sorted {
        perm: Option<Vec<u32>>,
        segs: Vec<Seg>,
        block_group: Vec<u32>,
    },
    /// Original order; the group of every row.
    Gather { gidx: Vec<u32> },
}

/// Output columns `n0..n1` of a GPTQ linear in the kernels' layout (see the
/// module doc). Column `j` of a call is column `n0 + j` of the layer.
///
/// # Examples
/// ```
/// use gptq_core::runtime::qmatmul::{qmatmul, QMode, QWeights, QuantTensors};
/// // K = N = 32, 4 bits, every code 9, one group: zero 8 (v2), scale 0.5.
/// let qweight = vec![0x9999_9999u32 as i32; 4 * 32];
/// let qzeros = vec![0x8888_8888u32 as i32; 4];
/// let scales = vec![0x3800u16; 32];
/// let t = QuantTensors { qweight: &qweight, qzeros: &qzeros, scales: &scales, g_idx: None, k: 32, n: 32, bits: 4, v2: true };
/// let w = QWeights::new(&t, 0, 32, QMode::Auto).unwrap();
/// let x = vec![1.0f32; 32];
/// let mut y = vec![0f32; 32];
/// qmatmul(&x, 1, 32, &w, None, 0, 32, &mut y, 0, 32).unwrap();
/// assert_eq!(y[0], 16.0); // 32 · 0.5 · (9 − 8)
/// ```
pub struct QWeights {
    bits: u32,
    k: usize,
    /// Rows in code order (padded).
    kp: usize,
    n: usize,
    groups: usize,
    /// `[block][kp/32][bits][8]`.
    codes: Vec<u32>,
    /// `[block][G][8]` f16 bits.
    scales: Vec<u16>,
    /// `[block][G][8]` stored zero fields.
    zeros: Vec<u8>,
    /// Added to a stored zero field (1 for v1).
    zoff: f32,
    order: Order,
    /// The int8 route's codes (then `codes` is empty).
    int8: Option<int8::Codes>,
}

/// Reads field `i` (`bits` wide) of a little-endian bitstream in `words`
/// (word `w` at `words[base + w * stride]`).
#[inline(always)]
fn field(words: &[i32], base: usize, stride: usize, i: usize, bits: u32) -> u32 {
    let bit = i * bits as usize;
    let (w, s) = (bit / 32, (bit % 32) as u32);
    let mut v = (words[base + w * stride] as u32) >> s;
    if s + bits > 32 {
        v |= (words[base + (w + 1) * stride] as u32) << (32 - s);
    }
    v & ((1u32 << bits) - 1)
}

/// Packs columns `c0..c0 + lanes` (one block of 8) of `t` in code order
/// `row_of` into `dst` (`[kp/32][bits][8]` words).
fn pack_block(t: &QuantTensors<'_>, c0: usize, lanes: usize, row_of: &[u32], dst: &mut [u32]) {
    let (b, bits) = (t.bits as usize, t.bits);
    // The block's codes unpacked, [k][8].
    let mut tmp = vec![0u8; t.k * NB];
    for r in 0..t.k {
        for l in 0..lanes {
            tmp[r * NB + l] = field(t.qweight, c0 + l, t.n, r, bits) as u8;
        }
    }
    for (kk, &r) in row_of.iter().enumerate() {
        if r == PAD {
            continue;
        }
        let (kb, j) = (kk / KB, kk % KB);
        let bit = j * b;
        let (wi, s) = (bit / 32, (bit % 32) as u32);
        let base = (kb * b + wi) * NB;
        for l in 0..lanes {
            let c = tmp[r as usize * NB + l] as u32;
            dst[base + l] |= c << s;
            if s + bits > 32 {
                dst[base + NB + l] |= c >> (32 - s);
            }
        }
    }
}

impl QWeights {
    /// Builds columns `n0..n1` of a layer in the kernels' layout.
    ///
    /// # Errors
    /// [`KernelError`] when a tensor's size does not match `k`, `n`, `bits`,
    /// a `g_idx` value is out of range, or `n0 > n1 > n`.
    pub fn new(
        t: &QuantTensors<'_>,
        n0: usize,
        n1: usize,
        mode: QMode,
    ) -> Result<QWeights, KernelError> {
        Self::with_act(t, n0, n1, mode, ActQuant::F32)
    }

    /// As [`QWeights::new`], for activations of precision `act`;
    /// [`ActQuant::Int8`] always sorts act-order rows by group
    /// ([`QMode::Reorder`], whatever `mode` says).
    ///
    /// # Errors
    /// As [`QWeights::new`].
    pub fn with_act(
        t: &QuantTensors<'_>,
        n0: usize,
        n1: usize,
        mode: QMode,
        act: ActQuant,
    ) -> Result<QWeights, KernelError> {
        let mode = if act == ActQuant::Int8 {
            QMode::Reorder
        } else {
            mode
        };
        let groups = t.groups()?;
        let (k, n, bits) = (t.k, t.n, t.bits);
        ensure(n0 <= n1 && n1 <= n, || {
            format!("gptq: column range {n0}..{n1} is not within 0..{n}")
        })?;
        let gidx: Vec<u32> = match t.g_idx {
            Some(g) => g.iter().map(|&v| v as u32).collect(),
            None => (0..k).map(|i| (i / (k / groups)) as u32).collect(),
        };
        // Stable counting sort of rows by group; runs padded to 32.
        let mut count = vec![0usize; groups];
        for &g in &gidx {
            count[g as usize] += 1;
        }
        let kp_sorted: usize = count.iter().map(|c| c.div_ceil(KB) * KB).sum();
        let monotone = gidx.windows(2).all(|p| p[0] <= p[1]);
        let identity = monotone && kp_sorted == k;
        let reorder = match mode {
            QMode::Reorder => true,
            QMode::Gather => identity,
            QMode::Auto => identity || kp_sorted <= k + k / 4,
        };
        let (kp, order, row_of) = if reorder {
            let mut start = vec![0usize; groups + 1];
            for g in 0..groups {
                start[g + 1] = start[g] + count[g].div_ceil(KB) * KB;
            }
            let mut perm = vec![PAD; kp_sorted];
            let mut fill = start.clone();
            for (r, &g) in gidx.iter().enumerate() {
                perm[fill[g as usize]] = r as u32;
                fill[g as usize] += 1;
            }
            let mut segs = Vec::new();
            let mut block_group = vec![0u32; kp_sorted / KB];
            for g in 0..groups {
                let (b0, b1) = (start[g] / KB, start[g + 1] / KB);
                if b1 > b0 {
                    segs.push(Seg {
                        g: g as u32,
                        b0: b0 as u32,
                        b1: b1 as u32,
                    });
                    block_group[b0..b1].fill(g as u32);
                }
            }
            let row_of = perm.clone();
            let perm = if identity { None } else { Some(perm) };
            (
                kp_sorted,
                Order::Sorted {
                    perm,
                    segs,
                    block_group,
                },
                row_of,
            )
        } else {
            (k, Order::Gather { gidx }, (0..k as u32).collect())
        };

        let cols = n1 - n0;
        let nblk = cols.div_ceil(NB);
        let nkb = kp / KB;
        let b = bits as usize;
        let int8 = (act == ActQuant::Int8).then(|| int8::Codes::new(t, n0, n1, &row_of));
        let fcodes = if int8.is_some() {
            0
        } else {
            nblk * nkb * b * NB
        };
        let mut codes = vec![0u32; fcodes];
        let mut scales = vec![0u16; nblk * groups * NB];
        let mut zeros = vec![0u8; nblk * groups * NB];
        // One column block's codes unpacked, [k][8], reused per block.
        let zwords = n / 32 * b;
        for blk in 0..nblk {
            let c0 = n0 + blk * NB;
            let lanes = NB.min(n1 - c0);
            if int8.is_none() {
                let dst = &mut codes[blk * nkb * b * NB..(blk + 1) * nkb * b * NB];
                pack_block(t, c0, lanes, &row_of, dst);
            }
            for g in 0..groups {
                let o = (blk * groups + g) * NB;
                for l in 0..lanes {
                    scales[o + l] = t.scales[g * n + c0 + l];
                    zeros[o + l] = field(t.qzeros, g * zwords, 1, c0 + l, bits) as u8;
                }
            }
        }
        Ok(QWeights {
            bits,
            k,
            kp,
            n: cols,
            groups,
            codes,
            scales,
            zeros,
            zoff: if t.v2 { 0.0 } else { 1.0 },
            order,
            int8,
        })
    }

    /// Output columns held (`n1 − n0` of [`QWeights::new`]).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features `K`.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bit width.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The activation precision chosen at load.
    pub fn act_quant(&self) -> ActQuant {
        if self.int8.is_some() {
            ActQuant::Int8
        } else {
            ActQuant::F32
        }
    }

    /// The mode in use after [`QMode::Auto`] was resolved.
    pub fn mode(&self) -> QMode {
        match self.order {
            Order::Sorted { .. } => QMode::Reorder,
            Order::Gather { .. } => QMode::Gather,
        }
    }

    /// Bytes held: codes, scales, zeros and the act-order tables.
    pub fn byte_len(&self) -> usize {
        let o = match &self.order {
            Order::Sorted {
                perm,
                segs,
                block_group,
            } => {
                perm.as_ref().map_or(0, |p| p.len() * 4)
                    + segs.len() * core::mem::size_of::<Seg>()
                    + block_group.len() * 4
            }
            Order::Gather { gidx } => gidx.len() * 4,
        };
        let i8b = self.int8.as_ref().map_or(0, int8::Codes::byte_len);
        self.codes.len() * 4 + i8b + self.scales.len() * 2 + self.zeros.len() + o
    }

    fn nkb(&self) -> usize {
        self.kp / KB
    }

    /// Scale and zero vectors of group `g` for column block `blk`.
    ///
    /// # Safety
    /// `blk` < blocks, `g` < groups.
    #[inline(always)]
    unsafe fn sz(&self, blk: usize, g: usize) -> ([F4; 2], [F4; 2]) {
        let o = (blk * self.groups + g) * NB;
        let sp = self.scales.as_ptr().add(o);
        let zp = self.zeros.as_ptr().add(o);
        let zo = F4::splat(self.zoff);
        (
            [F4::load_f16(sp), F4::load_f16(sp.add(4))],
            [F4::load_u8(zp).add(zo), F4::load_u8(zp.add(4)).add(zo)],
        )
    }
}

/// Expands `$body` 32 times with `$j` bound to `0usize..32` as constants, so
/// that every shift below is an immediate.
macro_rules! unroll32 {
    ($j:ident => $body:block) => {
        unroll32!(@ $j $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)
    };
    (@ $j:ident $body:block; $($n:literal)*) => {
        $( { const $j: usize = $n; $body } )*
    };
}

/// Code `J` of the 32 in a block, for 8 columns (two vectors).
///
/// # Safety
/// `wp` points at a block of `B * 8` words.
#[inline(always)]
unsafe fn code<const B: u32, const J: usize>(wp: *const u32) -> (F4, F4) {
    let bit = J as u32 * B;
    let (i, s) = ((bit / 32) as usize, bit % 32);
    let lo = I4::load(wp.add(i * NB));
    let hi = I4::load(wp.add(i * NB + 4));
    let (mut ql, mut qh) = (lo.shr(s), hi.shr(s));
    if s + B > 32 {
        ql = ql.or(I4::load(wp.add((i + 1) * NB)).shl(32 - s));
        qh = qh.or(I4::load(wp.add((i + 1) * NB + 4)).shl(32 - s));
    }
    if s + B != 32 {
        let m = I4::splat((1u32 << B) - 1);
        ql = ql.and(m);
        qh = qh.and(m);
    }
    (ql.to_f32(), qh.to_f32())
}

/// Where [`code_scaled`] finds code `j` of a block: `(t, u, masked)` with the
/// word shifted right by `t` and the code then at bit `u` (a multiple of 8),
/// isolated by a mask unless it is already the top field; `None` for 3-bit
/// codes (which straddle words), read with [`code`].
const fn split(bits: u32, j: usize) -> Option<(u32, u32, bool)> {
    if bits == 3 {
        return None;
    }
    let s = j as u32 * bits % 32;
    let (t, u) = (s % 8, s - s % 8);
    if u + bits == 32 {
        Some((s, 0, false))
    } else {
        Some((t, u, true))
    }
}

/// `2^−u(j)` for the 32 codes of a block, `u(j)` the bit position at which
/// [`code_scaled`] leaves code `j` (see [`split`]).
fn x_scales(bits: u32) -> [f32; KB] {
    let mut t = [1f32; KB];
    for (j, v) in t.iter_mut().enumerate() {
        if let Some((_, u, _)) = split(bits, j) {
            *v = f32::from_bits((127 - u) << 23);
        }
    }
    t
}

/// Code `J` of a block for 8 columns as f32 times `2^u` (see [`split`]): the
/// word is shifted by `t < 8` (one shift serves the codes `8` bits apart,
/// e.g. 4 of the 8 nibbles of a word), masked in place and converted, so most
/// codes cost a mask and a convert and no shift; the caller scales `x_J` by
/// `2^−u` instead ([`x_scales`]). Exact: a code times `2^u` has at most 8
/// significant bits below `2^31`.
///
/// # Safety
/// `wp` points at a block of `B * 8` words.
#[inline(always)]
unsafe fn code_scaled<const B: u32, const J: usize>(wp: *const u32, masks: &[I4; 4]) -> (F4, F4) {
    match split(B, J) {
        None => code::<B, J>(wp),
        Some((t, u, masked)) => {
            let i = (J as u32 * B / 32) as usize;
            let (mut ql, mut qh) = (I4::load(wp.add(i * NB)), I4::load(wp.add(i * NB + 4)));
            if t > 0 {
                ql = ql.shr(t);
                qh = qh.shr(t);
            }
            if masked {
                let m = masks[(u / 8) as usize];
                ql = ql.and(m);
                qh = qh.and(m);
            }
            (ql.to_f32(), qh.to_f32())
        }
    }
}

/// `acc[c][r] += Σ_j x[r][j] · f_j` over one 32-row block of each of `C`
/// column blocks (two streams at once keep more loads in flight), `f_j` the
/// codes as [`code_scaled`] leaves them (`x` pre-scaled to match).
///
/// # Safety
/// `wp[c]` points at a block of `B * 8` words; `xp[r]..+32` readable.
#[inline(always)]
unsafe fn block_dot<const B: u32, const R: usize, const C: usize>(
    wp: &[*const u32; C],
    xp: &[*const f32; R],
    masks: &[I4; 4],
    acc: &mut [[[F4; 2]; R]; C],
) {
    unroll32!(J => {
        let mut f = [(F4::zero(), F4::zero()); C];
        for c in 0..C {
            f[c] = code_scaled::<B, J>(wp[c], masks);
        }
        for r in 0..R {
            let xv = F4::splat(*xp[r].add(J));
            for c in 0..C {
                acc[c][r][0] = acc[c][r][0].fma(xv, f[c].0);
                acc[c][r][1] = acc[c][r][1].fma(xv, f[c].1);
            }
        }
    });
}

/// `acc[r] += Σ_j x[r][j] · s_j·(q_j − z_j)` over one 32-row block, scale and
/// zero looked up per row through `gp` in the per-block tables `sf`, `zf`
/// (`[G][8]` f32).
///
/// # Safety
/// As [`block_dot`]; `gp..+32` readable with values < G.
#[inline(always)]
unsafe fn block_dot_gather<const B: u32, const R: usize>(
    wp: *const u32,
    xp: &[*const f32; R],
    gp: *const u32,
    sf: *const f32,
    zf: *const f32,
    acc: &mut [[F4; 2]; R],
) {
    unroll32!(J => {
        let (fl, fh) = code::<B, J>(wp);
        let o = *gp.add(J) as usize * NB;
        let wl = fl.sub(F4::load(zf.add(o))).mul(F4::load(sf.add(o)));
        let wh = fh.sub(F4::load(zf.add(o + 4))).mul(F4::load(sf.add(o + 4)));
        for r in 0..R {
            let xv = F4::splat(*xp[r].add(J));
            acc[r][0] = acc[r][0].fma(xv, wl);
            acc[r][1] = acc[r][1].fma(xv, wh);
        }
    });
}

/// Dequantizes code blocks `kb0..kb0 + nb` of column block `blk` into a
/// panel `[nb·32][8]` (the micro-kernel layout), block `kb` with group
/// `group(kb)`.
///
/// # Safety
/// `blk`, the blocks and the groups in range; `panel` holds `nb * 32 * 8`.
#[inline(always)]
unsafe fn dequant_sorted<const B: u32>(
    q: &QWeights,
    blk: usize,
    kb0: usize,
    nb: usize,
    block_group: &[u32],
    panel: *mut f32,
) {
    let nkb = q.nkb();
    for t in 0..nb {
        let kb = kb0 + t;
        let (s, z) = q.sz(blk, block_group[kb] as usize);
        let wp = q.codes.as_ptr().add((blk * nkb + kb) * B as usize * NB);
        let pp = panel.add(t * KB * NB);
        unroll32!(J => {
            let (fl, fh) = code::<B, J>(wp);
            fl.sub(z[0]).mul(s[0]).store(pp.add(J * NB));
            fh.sub(z[1]).mul(s[1]).store(pp.add(J * NB + 4));
        });
    }
}

/// As [`dequant_sorted`], with scale and zero per row (gather mode).
///
/// # Safety
/// As [`dequant_sorted`]; `gidx` covers the rows; `sf`, `zf` `[G][8]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dequant_gather<const B: u32>(
    q: &QWeights,
    blk: usize,
    kb0: usize,
    nb: usize,
    gidx: &[u32],
    sf: *const f32,
    zf: *const f32,
    panel: *mut f32,
) {
    let nkb = q.nkb();
    for t in 0..nb {
        let kb = kb0 + t;
        let wp = q.codes.as_ptr().add((blk * nkb + kb) * B as usize * NB);
        let gp = gidx.as_ptr().add(kb * KB);
        let pp = panel.add(t * KB * NB);
        unroll32!(J => {
            let (fl, fh) = code::<B, J>(wp);
            let o = *gp.add(J) as usize * NB;
            fl.sub(F4::load(zf.add(o))).mul(F4::load(sf.add(o))).store(pp.add(J * NB));
            fh.sub(F4::load(zf.add(o + 4))).mul(F4::load(sf.add(o + 4))).store(pp.add(J * NB + 4));
        });
    }
}

/// Where output column `j` of row `i` goes: `y[y_off + i*ldy + j - n0]`,
/// for `j ∈ [n0, n1)` only.
struct Out<'a> {
    y: &'a mut [f32],
    y_off: usize,
    ldy: usize,
    n0: usize,
    n1: usize,
}

impl Out<'_> {
    /// Writes (or adds, unless `first`) 8 values of row `i` at columns
    /// `c0..c0 + 8`, clipped to `[n0, n1)`; `first` adds the bias.
    #[inline(always)]
    fn put(&mut self, i: usize, c0: usize, v: &[F4; 2], first: bool, bias: Option<&[f32]>) {
        let mut t = [0f32; NB];
        // SAFETY: t holds 8 values.
        unsafe {
            v[0].store(t.as_mut_ptr());
            v[1].store(t.as_mut_ptr().add(4));
        }
        let lo = self.n0.max(c0);
        let hi = self.n1.min(c0 + NB);
        let base = self.y_off + i * self.ldy;
        for c in lo..hi {
            let d = &mut self.y[base + c - self.n0];
            let v = t[c - c0];
            *d = if first {
                v + bias.map_or(0.0, |b| b[c])
            } else {
                *d + v
            };
        }
    }
}

/// Computes `y[y_off + i*ldy + (j - n0)] = Σ_k x[i*k + k'] · W[j, k'] + bias[j]`
/// for rows `i < m` of `x [m, k]` and output columns `j ∈ [n0, n1)` of the
/// quantized `W` (column `j` of `w`, `j < w.rows()`), like
/// [`super::matmul()`] with `W = s·(q − z)` dequantized on the fly.
///
/// # Errors
/// [`KernelError`] when `k` is not `w.cols()`, a slice is too short,
/// `n0 > n1 > w.rows()`, or `ldy < n1 - n0` with `m > 1`.
///
/// # Examples
/// See [`QWeights`].
#[allow(clippy::too_many_arguments)]
pub fn qmatmul(
    x: &[f32],
    m: usize,
    k: usize,
    w: &QWeights,
    bias: Option<&[f32]>,
    n0: usize,
    n1: usize,
    y: &mut [f32],
    y_off: usize,
    ldy: usize,
) -> Result<(), KernelError> {
    ensure(k == w.k, || {
        format!("qmatmul: x has {k} columns, the weight has K = {}", w.k)
    })?;
    ensure(n0 <= n1 && n1 <= w.n, || {
        format!(
            "qmatmul: column range {n0}..{n1} is not within the weight's 0..{}",
            w.n
        )
    })?;
    let nw = n1 - n0;
    need("qmatmul x [m, k]", x.len(), size("qmatmul x", &[m, k])?)?;
    if let Some(b) = bias {
        need("qmatmul bias [n1]", b.len(), n1)?;
    }
    if m == 0 || nw == 0 {
        return Ok(());
    }
    check_out("qmatmul", y.len(), m, nw, y_off, ldy)?;
    let mut o = Out {
        y,
        y_off,
        ldy,
        n0,
        n1,
    };
    if let Some(codes) = &w.int8 {
        let xs = code_order(x, m, w);
        int8::run(&xs, m, w, codes, bias, &mut o);
        return Ok(());
    }
    match w.bits {
        2 => run::<2>(x, m, w, bias, &mut o),
        3 => run::<3>(x, m, w, bias, &mut o),
        4 => run::<4>(x, m, w, bias, &mut o),
        _ => run::<8>(x, m, w, bias, &mut o),
    }
    Ok(())
}

/// `x [m, k]` in code order `[m, kp]`: gathered (and zero-padded) when rows
/// were reordered.
fn code_order<'a>(x: &'a [f32], m: usize, w: &QWeights) -> std::borrow::Cow<'a, [f32]> {
    let (k, kp) = (w.k, w.kp);
    match &w.order {
        Order::Sorted {
            perm: Some(perm), ..
        } => {
            let mut g = vec![0f32; m * kp];
            for i in 0..m {
                let (src, dst) = (&x[i * k..(i + 1) * k], &mut g[i * kp..(i + 1) * kp]);
                for (d, &p) in dst.iter_mut().zip(perm) {
                    if p != PAD {
                        *d = src[p as usize];
                    }
                }
            }
            std::borrow::Cow::Owned(g)
        }
        _ => std::borrow::Cow::Borrowed(&x[..m * k]),
    }
}

fn run<const B: u32>(x: &[f32], m: usize, w: &QWeights, bias: Option<&[f32]>, o: &mut Out<'_>) {
    let xs = &*code_order(x, m, w);
    if m < GEMM_MIN_M {
        match m {
            1 => gemv::<B, 1>(xs, w, bias, o),
            2 => gemv::<B, 2>(xs, w, bias, o),
            _ => gemv::<B, 3>(xs, w, bias, o),
        }
    } else {
        gemm::<B>(xs, m, w, bias, o);
    }
}

/// Per-block scale and zero tables `[G][8]` f32 for gather mode.
fn widen_tables(w: &QWeights, blk: usize, sf: &mut [f32], zf: &mut [f32]) {
    for g in 0..w.groups {
        let o = (blk * w.groups + g) * NB;
        for l in 0..NB {
            sf[g * NB + l] = f16_to_f32(w.scales[o + l]);
            zf[g * NB + l] = w.zeros[o + l] as f32 + w.zoff;
        }
    }
}

fn gemv<const B: u32, const R: usize>(
    xs: &[f32],
    w: &QWeights,
    bias: Option<&[f32]>,
    o: &mut Out<'_>,
) {
    let (kp, nkb) = (w.kp, w.nkb());
    let wb = B as usize * NB;
    let (blk0, blk1) = (o.n0 / NB, o.n1.div_ceil(NB));
    match &w.order {
        Order::Sorted { segs, .. } => {
            // x scaled per code position (see `code_scaled`); Σ x per segment
            // and row.
            let xsc = x_scales(B);
            let mut xq = vec![0f32; R * kp];
            for (d, s) in xq.chunks_exact_mut(KB).zip(xs[..R * kp].chunks_exact(KB)) {
                for j in 0..KB {
                    d[j] = s[j] * xsc[j];
                }
            }
            let mut xsum = vec![0f32; R * segs.len()];
            for r in 0..R {
                for (si, sg) in segs.iter().enumerate() {
                    let row = &xs[r * kp + sg.b0 as usize * KB..r * kp + sg.b1 as usize * KB];
                    xsum[r * segs.len() + si] = row.iter().sum();
                }
            }
            let mut blk = blk0;
            while blk + GEMV_C <= blk1 {
                gemv_sorted::<B, R, GEMV_C>(&xq, w, segs, &xsum, blk, bias, o);
                blk += GEMV_C;
            }
            while blk < blk1 {
                gemv_sorted::<B, R, 1>(&xq, w, segs, &xsum, blk, bias, o);
                blk += 1;
            }
        }
        Order::Gather { gidx } => {
            let mut sf = vec![0f32; w.groups * NB];
            let mut zf = vec![0f32; w.groups * NB];
            for blk in blk0..blk1 {
                widen_tables(w, blk, &mut sf, &mut zf);
                let mut acc = [[F4::zero(); 2]; R];
                for kb in 0..nkb {
                    let mut xp = [xs.as_ptr(); R];
                    for (r, p) in xp.iter_mut().enumerate() {
                        // SAFETY: r < R rows of kp values; kb*32+32 <= kp.
                        *p = unsafe { xs.as_ptr().add(r * kp + kb * KB) };
                    }
                    // SAFETY: block (blk, kb) within codes; gidx has kp
                    // values below G; sf/zf hold G·8.
                    unsafe {
                        let wp = w.codes.as_ptr().add((blk * nkb + kb) * wb);
                        block_dot_gather::<B, R>(
                            wp,
                            &xp,
                            gidx.as_ptr().add(kb * KB),
                            sf.as_ptr(),
                            zf.as_ptr(),
                            &mut acc,
                        );
                    }
                }
                for (r, v) in acc.iter().enumerate() {
                    o.put(r, blk * NB, v, true, bias);
                }
            }
        }
    }
}

/// Column blocks `blk..blk + C` of the sorted-order GEMV: `xs` is `x` scaled
/// for [`code_scaled`], `xsum[r·S + s]` the row's Σ x over segment `s`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemv_sorted<const B: u32, const R: usize, const C: usize>(
    xs: &[f32],
    w: &QWeights,
    segs: &[Seg],
    xsum: &[f32],
    blk: usize,
    bias: Option<&[f32]>,
    o: &mut Out<'_>,
) {
    let (kp, nkb) = (w.kp, w.nkb());
    let wb = B as usize * NB;
    // Code masks at bits 0, 8, 16, 24, built from the runtime bit width so
    // that they live in registers rather than being rematerialized per use.
    let mb = (1u32 << w.bits) - 1;
    let masks = [0, 8, 16, 24].map(|u| I4::splat(mb << u));
    let mut yv = [[[F4::zero(); 2]; R]; C];
    for (si, sg) in segs.iter().enumerate() {
        let mut acc = [[[F4::zero(); 2]; R]; C];
        for kb in sg.b0 as usize..sg.b1 as usize {
            let mut xp = [xs.as_ptr(); R];
            for (r, p) in xp.iter_mut().enumerate() {
                // SAFETY: r < R rows of kp values; kb*32+32 <= kp.
                *p = unsafe { xs.as_ptr().add(r * kp + kb * KB) };
            }
            let mut wp = [w.codes.as_ptr(); C];
            for (c, p) in wp.iter_mut().enumerate() {
                // SAFETY: block (blk + c, kb) lies within codes.
                *p = unsafe { w.codes.as_ptr().add(((blk + c) * nkb + kb) * wb) };
            }
            // SAFETY: as above.
            unsafe { block_dot::<B, R, C>(&wp, &xp, &masks, &mut acc) };
        }
        for c in 0..C {
            // SAFETY: blk + c < blocks, sg.g < groups.
            let (s, z) = unsafe { w.sz(blk + c, sg.g as usize) };
            for r in 0..R {
                let t = F4::splat(xsum[r * segs.len() + si]);
                for h in 0..2 {
                    yv[c][r][h] = yv[c][r][h].fma(s[h], acc[c][r][h].sub(z[h].mul(t)));
                }
            }
        }
    }
    for (c, yc) in yv.iter().enumerate() {
        for (r, v) in yc.iter().enumerate() {
            o.put(r, (blk + c) * NB, v, true, bias);
        }
    }
}

fn gemm<const B: u32>(xs: &[f32], m: usize, w: &QWeights, bias: Option<&[f32]>, o: &mut Out<'_>) {
    let kp = w.kp;
    let (blk0, blk1) = (o.n0 / NB, o.n1.div_ceil(NB));
    let mut panels = vec![0f32; TILE_BLOCKS * KC * NR];
    let (mut sf, mut zf) = (Vec::new(), Vec::new());
    let mut tb = blk0;
    while tb < blk1 {
        let np = TILE_BLOCKS.min(blk1 - tb);
        if let Order::Gather { .. } = w.order {
            sf.resize(np * w.groups * NB, 0.0);
            zf.resize(np * w.groups * NB, 0.0);
            for p in 0..np {
                let r = p * w.groups * NB..(p + 1) * w.groups * NB;
                widen_tables(w, tb + p, &mut sf[r.clone()], &mut zf[r]);
            }
        }
        let mut kt = 0;
        while kt < kp {
            let kc = KC.min(kp - kt);
            for p in 0..np {
                let pp = panels[p * KC * NR..].as_mut_ptr();
                // SAFETY: blocks kt/32.. (kt+kc)/32 <= kp/32; the panel holds KC*NR.
                unsafe {
                    match &w.order {
                        Order::Sorted { block_group, .. } => {
                            dequant_sorted::<B>(w, tb + p, kt / KB, kc / KB, block_group, pp)
                        }
                        Order::Gather { gidx } => {
                            let t = p * w.groups * NB;
                            dequant_gather::<B>(
                                w,
                                tb + p,
                                kt / KB,
                                kc / KB,
                                gidx,
                                sf[t..].as_ptr(),
                                zf[t..].as_ptr(),
                                pp,
                            )
                        }
                    }
                }
            }
            let first = kt == 0;
            let mut ib = 0;
            while ib < m {
                let mr = MR.min(m - ib);
                // SAFETY: rows ib..ib+mr < m of kp values, columns kt..kt+kc <= kp.
                let xp = unsafe { xs.as_ptr().add(ib * kp + kt) };
                for p in 0..np {
                    let pp = panels[p * KC * NR..].as_ptr();
                    let c0 = (tb + p) * NB;
                    // SAFETY: as above; the panel holds kc*NR values.
                    unsafe {
                        match mr {
                            4 => put_rows(o, ib, c0, &micro::<4>(xp, kp, pp, kc), first, bias),
                            3 => put_rows(o, ib, c0, &micro::<3>(xp, kp, pp, kc), first, bias),
                            2 => put_rows(o, ib, c0, &micro::<2>(xp, kp, pp, kc), first, bias),
                            _ => put_rows(o, ib, c0, &micro::<1>(xp, kp, pp, kc), first, bias),
                        }
                    }
                }
                ib += MR;
            }
            kt += KC;
        }
        tb += TILE_BLOCKS;
    }
}

#[inline(always)]
fn put_rows<const ROWS: usize>(
    o: &mut Out<'_>,
    i0: usize,
    c0: usize,
    acc: &[[F4; 2]; ROWS],
    first: bool,
    bias: Option<&[f32]>,
) {
    for (i, a) in acc.iter().enumerate() {
        o.put(i0 + i, c0, a, first, bias);
    }
}
