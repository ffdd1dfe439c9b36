// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! `y = x · Wᵀ (+ bias)`: the linear-layer kernel.
//!
//! `x` is `[M, K]` f32, `W` is `[N, K]` (rows are output features, like
//! `nn.Linear.weight`) in f32, f16 or bf16. Two code paths:
//!
//! - `M < 4` (decode, GEMV): each group of four `W` rows is streamed once per
//!   `x` row with eight vector accumulators; f16/bf16 are widened in
//!   registers as they are loaded. Memory-bound by design.
//! - `M ≥ 4` (prefill, GEMM): for each `KC` slice of `K`, `x` is packed into
//!   4-row blocks (`[KC][4]`); `W` is cut into `NC × KC` tiles, each tile is
//!   widened to f32 and packed into 8-row panels (`[KC][8]`, a 4×4 register
//!   transpose), and a 4×8 outer-product micro-kernel (eight 4-lane
//!   accumulators; `x` lanes broadcast by shuffles, three loads per `k`
//!   step) runs every block over each panel.
//!   Only one tile of `W` exists in f32 at a time. Every output sums its
//!   products in `K` order within a tile and adds tiles in order, so the
//!   result does not depend on the row split between Workers.
//!
//! GPT-2 `Conv1D` stores its weight `[K, N]`: convert it once at load with
//! [`transpose`] (it also cuts a Worker's row range), then use [`matmul`].

use super::simd::F4;
use super::{ensure, need, size, KernelError};

/// Columns of `K` per packed tile (fits a 4×KC strip of `x` and an 8×KC
/// panel in L1).
pub(crate) const KC: usize = 256;
/// Rows of `W` per packed tile (16 panels of 8).
const NC: usize = 128;
/// Rows of `x` per micro-kernel on unpacked `x` ([`micro`], used by the
/// quantized GEMM).
pub(crate) const MR: usize = 4;
/// Rows of `x` per dense micro-kernel on packed `x` ([`micro_packed`]): one
/// vector load of `x` per `k` step, so exactly four lanes.
const MR_D: usize = 4;
const _: () = assert!(
    MR_D == 4,
    "micro_packed broadcasts the four lanes of one x vector"
);
/// Rows of `W` per micro-kernel (two 4-lane vectors).
pub(crate) const NR: usize = 8;
/// Below this many `x` rows the GEMV path is used.
pub(crate) const GEMM_MIN_M: usize = 4;

/// A weight matrix `[N, K]` borrowed in its storage dtype.
///
/// f16 and bf16 are given as raw `u16` bit patterns (as read from a
/// safetensors file).
///
/// # Examples
/// ```
/// use gptq_core::runtime::Weights;
/// let bits = [0x3c00u16, 0x4000]; // f16 1.0, 2.0
/// assert_eq!(Weights::F16(&bits).len(), 2);
/// ```
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// IEEE half-precision bit patterns.
    F16(&'a [u16]),
    /// bfloat16 bit patterns.
    Bf16(&'a [u16]),
}

impl Weights<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) | Weights::Bf16(w) => w.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to f32.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Weights::F32(w) => w[i],
            Weights::F16(w) => F16::one(w[i]),
            Weights::Bf16(w) => Bf16::one(w[i]),
        }
    }

    /// Widens `dst.len()` elements starting at `start` into `dst`.
    ///
    /// # Panics
    /// When `start + dst.len() > self.len()`.
    pub fn widen_into(&self, start: usize, dst: &mut [f32]) {
        match self {
            Weights::F32(w) => dst.copy_from_slice(&w[start..start + dst.len()]),
            Weights::F16(w) => widen::<F16>(&w[start..start + dst.len()], dst),
            Weights::Bf16(w) => widen::<Bf16>(&w[start..start + dst.len()], dst),
        }
    }
}

/// How one storage dtype is widened to f32.
trait Kind {
    type E: Copy;
    /// # Safety
    /// `p..p+4` must be readable.
    unsafe fn load4(p: *const Self::E) -> F4;
    fn one(e: Self::E) -> f32;
}

struct F32;
struct F16;
struct Bf16;

impl Kind for F32 {
    type E = f32;
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> F4 {
        F4::load(p)
    }
    #[inline(always)]
    fn one(e: f32) -> f32 {
        e
    }
}

impl Kind for F16 {
    type E = u16;
    #[inline(always)]
    unsafe fn load4(p: *const u16) -> F4 {
        F4::load_f16(p)
    }
    #[inline(always)]
    fn one(e: u16) -> f32 {
        let h = e as u32;
        let em = h & 0x7fff;
        // 2^112 rescales the shifted exponent (and f16 subnormals) to f32.
        let mag = f32::from_bits(em << 13) * f32::from_bits((127 + 112) << 23);
        let special = if em >= 0x7c00 { 0x7f80_0000 } else { 0 };
        f32::from_bits(mag.to_bits() | special | ((h & 0x8000) << 16))
    }
}

impl Kind for Bf16 {
    type E = u16;
    #[inline(always)]
    unsafe fn load4(p: *const u16) -> F4 {
        F4::load_bf16(p)
    }
    #[inline(always)]
    fn one(e: u16) -> f32 {
        f32::from_bits((e as u32) << 16)
    }
}

fn widen<K: Kind>(src: &[K::E], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let mut i = 0;
    // SAFETY: indices < n, within both slices.
    unsafe {
        while i + 4 <= n {
            K::load4(src.as_ptr().add(i)).store(dst.as_mut_ptr().add(i));
            i += 4;
        }
    }
    while i < n {
        dst[i] = K::one(src[i]);
        i += 1;
    }
}

/// Computes `y[y_off + i*ldy + (j - n0)] = Σ_k x[i*k + k'] · W[j*k + k'] + bias[j]`
/// for rows `i < m` of `x` and output columns (rows of `W`) `j ∈ [n0, n1)`.
///
/// `W` holds at least `n1` rows of `k` elements; `bias`, when given, at
/// least `n1` values indexed like the rows of `W`. Writing only `n0..n1` lets
/// two Workers share one call's work; `y_off`/`ldy` place the columns either
/// compactly (`y_off = 0`, `ldy = n1 - n0`) or at their place in a full
/// `[M, N]` output (`y_off = n0`, `ldy = N`). Columns of `y` outside the
/// range are not touched. Accumulation is f32.
///
/// # Errors
/// [`KernelError`] when a slice is too short, `n0 > n1`, or `ldy < n1 - n0`
/// with `m > 1`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::{matmul, Weights};
/// let x = [1.0f32, 2.0]; // [1, 2]
/// let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // [3, 2]
/// let mut y = [0f32; 3];
/// matmul(&x, 1, 2, Weights::F32(&w), Some(&[0.5, 0.5, 0.5]), 0, 3, &mut y, 0, 3).unwrap();
/// assert_eq!(y, [1.5, 2.5, 3.5]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    x: &[f32],
    m: usize,
    k: usize,
    w: Weights<'_>,
    bias: Option<&[f32]>,
    n0: usize,
    n1: usize,
    y: &mut [f32],
    y_off: usize,
    ldy: usize,
) -> Result<(), KernelError> {
    ensure(n0 <= n1, || format!("matmul: row range n0={n0} > n1={n1}"))?;
    let nw = n1 - n0;
    need("matmul x [m, k]", x.len(), size("matmul x", &[m, k])?)?;
    need(
        "matmul weight [n1, k]",
        w.len(),
        size("matmul weight", &[n1, k])?,
    )?;
    if let Some(b) = bias {
        need("matmul bias [n1]", b.len(), n1)?;
    }
    if m == 0 || nw == 0 {
        return Ok(());
    }
    check_out("matmul", y.len(), m, nw, y_off, ldy)?;
    let o = Out { y, y_off, ldy, n0 };
    match w {
        Weights::F32(w) => run::<F32>(x, m, k, w, bias, n0, n1, o),
        Weights::F16(w) => run::<F16>(x, m, k, w, bias, n0, n1, o),
        Weights::Bf16(w) => run::<Bf16>(x, m, k, w, bias, n0, n1, o),
    }
    Ok(())
}

/// Checks that rows `0..m` of an output with row stride `ldy`, written at
/// columns `y_off..y_off + nw`, fit in `y_len` values (`m ≥ 1`, `nw ≥ 1`).
/// `what` names the kernel in the error.
pub(crate) fn check_out(
    what: &str,
    y_len: usize,
    m: usize,
    nw: usize,
    y_off: usize,
    ldy: usize,
) -> Result<(), KernelError> {
    ensure(m == 1 || ldy >= nw, || {
        format!("{what}: output row stride ldy={ldy} is smaller than the {nw} columns written")
    })?;
    let name = format!("{what} y");
    let last = size(&name, &[m - 1, ldy])?
        .checked_add(y_off)
        .and_then(|v| v.checked_add(nw))
        .ok_or_else(|| KernelError(format!("{name}: offset overflows")))?;
    need(&name, y_len, last)
}

/// Where output column `j` of row `i` goes: `y[y_off + i*ldy + j - n0]`.
struct Out<'a> {
    y: &'a mut [f32],
    y_off: usize,
    ldy: usize,
    n0: usize,
}

#[allow(clippy::too_many_arguments)]
fn run<K: Kind>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[K::E],
    bias: Option<&[f32]>,
    n0: usize,
    n1: usize,
    o: Out<'_>,
) {
    if k == 0 {
        for i in 0..m {
            for j in n0..n1 {
                o.y[o.y_off + i * o.ldy + j - n0] = bias.map_or(0.0, |b| b[j]);
            }
        }
    } else if m < GEMM_MIN_M {
        gemv::<K>(x, m, k, w, bias, n0, n1, o);
    } else {
        gemm::<K>(x, m, k, w, bias, n0, n1, o);
    }
}

/// Dot products of one `x` row with four consecutive `W` rows.
///
/// # Safety
/// `xr..xr+k` and `w..w+3*k+k` readable.
#[inline(always)]
unsafe fn dot4<K: Kind>(xr: *const f32, w: *const K::E, k: usize) -> [f32; 4] {
    let mut acc = [[F4::zero(); 2]; 4];
    let mut kk = 0;
    while kk + 8 <= k {
        let x0 = F4::load(xr.add(kk));
        let x1 = F4::load(xr.add(kk + 4));
        for (r, a) in acc.iter_mut().enumerate() {
            let wp = w.add(r * k + kk);
            a[0] = a[0].fma(x0, K::load4(wp));
            a[1] = a[1].fma(x1, K::load4(wp.add(4)));
        }
        kk += 8;
    }
    let mut out = [0f32; 4];
    for (r, a) in acc.iter().enumerate() {
        let mut s = a[0].add(a[1]).hsum();
        let wp = w.add(r * k);
        for t in kk..k {
            s += *xr.add(t) * K::one(*wp.add(t));
        }
        out[r] = s;
    }
    out
}

/// Dot product of one `x` row with one `W` row, summed in exactly the
/// order [`dot4`] uses, so results do not depend on how rows are grouped
/// (a split between Workers gives bit-identical outputs).
///
/// # Safety
/// `xr..xr+k` and `w..w+k` readable.
#[inline(always)]
unsafe fn dot1<K: Kind>(xr: *const f32, w: *const K::E, k: usize) -> f32 {
    let mut a = [F4::zero(); 2];
    let mut kk = 0;
    while kk + 8 <= k {
        a[0] = a[0].fma(F4::load(xr.add(kk)), K::load4(w.add(kk)));
        a[1] = a[1].fma(F4::load(xr.add(kk + 4)), K::load4(w.add(kk + 4)));
        kk += 8;
    }
    let mut s = a[0].add(a[1]).hsum();
    for t in kk..k {
        s += *xr.add(t) * K::one(*w.add(t));
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn gemv<K: Kind>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[K::E],
    bias: Option<&[f32]>,
    n0: usize,
    n1: usize,
    o: Out<'_>,
) {
    let mut j = n0;
    while j + 4 <= n1 {
        for i in 0..m {
            // SAFETY: matmul checked x.len() >= m*k and w.len() >= n1*k.
            let d = unsafe { dot4::<K>(x.as_ptr().add(i * k), w.as_ptr().add(j * k), k) };
            let yo = o.y_off + i * o.ldy + j - o.n0;
            for r in 0..4 {
                o.y[yo + r] = d[r] + bias.map_or(0.0, |b| b[j + r]);
            }
        }
        j += 4;
    }
    while j < n1 {
        for i in 0..m {
            // SAFETY: as above.
            let d = unsafe { dot1::<K>(x.as_ptr().add(i * k), w.as_ptr().add(j * k), k) };
            o.y[o.y_off + i * o.ldy + j - o.n0] = d + bias.map_or(0.0, |b| b[j]);
        }
        j += 1;
    }
}

/// Widens and packs up to `NR` rows of `W` (`kc` columns each, row stride
/// `ldw`) into `panel[kk*NR + r]`; missing rows are zero. Four rows × four
/// columns at a time go through a 4×4 register transpose.
///
/// # Safety
/// Rows `0..rows` of `w` readable for `kc` elements.
#[inline(always)]
unsafe fn pack<K: Kind>(w: *const K::E, ldw: usize, rows: usize, kc: usize, panel: &mut [f32]) {
    let panel = &mut panel[..kc * NR];
    let pp = panel.as_mut_ptr();
    for h in 0..NR / 4 {
        let kv = kc & !3;
        let mut kk = 0;
        while kk < kv {
            let r = core::array::from_fn(|q| {
                let row = h * 4 + q;
                if row < rows {
                    // SAFETY: row < rows and kk + 4 <= kc: within the caller's rows.
                    K::load4(w.add(row * ldw + kk))
                } else {
                    F4::zero()
                }
            });
            for (c, v) in F4::transpose4(r).into_iter().enumerate() {
                // SAFETY: (kk + c) * NR + h*4 + 4 <= kc * NR.
                v.store(pp.add((kk + c) * NR + h * 4));
            }
            kk += 4;
        }
        for q in 0..4 {
            let row = h * 4 + q;
            for t in kv..kc {
                panel[t * NR + row] = if row < rows {
                    K::one(*w.add(row * ldw + t))
                } else {
                    0.0
                };
            }
        }
    }
}

/// `ROWS`×8 block of `x[.., kb..kb+kc] · panelᵀ`.
///
/// # Safety
/// `x + i*ldx + kk` readable for `i < ROWS`, `kk < kc`; `panel` holds
/// `kc * NR` values.
#[inline(always)]
pub(crate) unsafe fn micro<const ROWS: usize>(
    x: *const f32,
    ldx: usize,
    panel: *const f32,
    kc: usize,
) -> [[F4; 2]; ROWS] {
    let mut acc = [[F4::zero(); 2]; ROWS];
    let mut xr = [x; ROWS];
    for (i, p) in xr.iter_mut().enumerate() {
        *p = x.add(i * ldx);
    }
    let mut b = panel;
    for kk in 0..kc {
        let b0 = F4::load(b);
        let b1 = F4::load(b.add(4));
        for i in 0..ROWS {
            let a = F4::splat(*xr[i].add(kk));
            acc[i][0] = acc[i][0].fma(a, b0);
            acc[i][1] = acc[i][1].fma(a, b1);
        }
        b = b.add(NR);
    }
    acc
}

/// Packs `rows ≤ MR_D` rows of `x` (row stride `ldx`, `kc` columns each)
/// into `dst[kk*MR_D + i]`; missing rows are zero.
///
/// # Safety
/// Rows `0..rows` of `x` readable for `kc` elements.
#[inline(always)]
unsafe fn pack_x(x: *const f32, ldx: usize, rows: usize, kc: usize, dst: &mut [f32]) {
    let dst = &mut dst[..kc * MR_D];
    for i in 0..MR_D {
        for kk in 0..kc {
            dst[kk * MR_D + i] = if i < rows { *x.add(i * ldx + kk) } else { 0.0 };
        }
    }
}

/// `MR_D`×8 block of packed `x` (`[kc][MR_D]`) times a packed panel
/// (`[kc][NR]`): eight accumulators. Each `k` step makes three vector loads
/// (one of `x`, whose lanes are broadcast by register shuffles, and two of
/// the panel): in Deno, V8 bounds-checks every wasm memory access
/// explicitly, so loads, not multiply-adds, bound this loop. Each output sums
/// its `kc` products in `kk` order, like [`micro`].
///
/// # Safety
/// `a` readable for `kc * MR_D` values, `b` for `kc * NR`.
#[inline(always)]
unsafe fn micro_packed(a: *const f32, b: *const f32, kc: usize) -> [[F4; 2]; MR_D] {
    let mut acc = [[F4::zero(); 2]; MR_D];
    // One step per loop trip: unrolled, LLVM interleaves two steps and the
    // temporaries push accumulators out of V8's 15 usable xmm registers.
    for kk in 0..kc {
        step(&mut acc, a.add(kk * MR_D), b.add(kk * NR));
    }
    acc
}

/// One `k` step of [`micro_packed`]: `acc[i] += a[i] · b[0..8]`.
///
/// # Safety
/// `a` readable for `MR_D` values, `b` for `NR`.
#[inline(always)]
unsafe fn step(acc: &mut [[F4; 2]; MR_D], a: *const f32, b: *const f32) {
    let b0 = F4::load(b);
    let b1 = F4::load(b.add(4));
    let av = F4::load(a);
    let s = [av.dup::<0>(), av.dup::<1>(), av.dup::<2>(), av.dup::<3>()];
    for (r, s) in acc.iter_mut().zip(s) {
        r[0] = r[0].fma(s, b0);
        r[1] = r[1].fma(s, b1);
    }
}

/// Adds (or, on the first K tile, stores plus bias) the first `rows` rows
/// of a micro-kernel block.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store_block(
    acc: &[[F4; 2]],
    rows: usize,
    o: &mut Out<'_>,
    i0: usize,
    j0: usize,
    cols: usize,
    first: bool,
    bias: Option<&[f32]>,
) {
    let mut t = [0f32; NR];
    for (i, a) in acc[..rows].iter().enumerate() {
        // SAFETY: t has NR = 8 elements.
        unsafe {
            a[0].store(t.as_mut_ptr());
            a[1].store(t.as_mut_ptr().add(4));
        }
        let yo = o.y_off + (i0 + i) * o.ldy + j0 - o.n0;
        let row = &mut o.y[yo..yo + cols];
        if first {
            match bias {
                Some(b) => {
                    for c in 0..cols {
                        row[c] = t[c] + b[j0 + c];
                    }
                }
                None => row.copy_from_slice(&t[..cols]),
            }
        } else {
            for c in 0..cols {
                row[c] += t[c];
            }
        }
    }
}

/// One packed `NC × KC` tile of `W`: rows `jb..` (`np` panels), columns
/// `kb..kb + kc`.
struct Tile {
    jb: usize,
    np: usize,
    kc: usize,
    n1: usize,
    first: bool,
}

/// Runs the micro-kernel over every packed `x` row block and panel of a
/// packed tile. Not generic over the weight dtype: the panels are f32.
#[inline(never)]
fn compute_tile(
    xs: &[f32],
    m: usize,
    panels: &[f32],
    tile: &Tile,
    bias: Option<&[f32]>,
    o: &mut Out<'_>,
) {
    let Tile {
        jb,
        np,
        kc,
        n1,
        first,
    } = *tile;
    for (blk, xb) in xs.chunks_exact(KC * MR_D).enumerate() {
        let ib = blk * MR_D;
        let rows = MR_D.min(m - ib);
        for p in 0..np {
            let pp = &panels[p * KC * NR..p * KC * NR + kc * NR];
            let j0 = jb + p * NR;
            let cols = NR.min(n1 - j0);
            // SAFETY: xb holds KC*MR_D >= kc*MR_D values, pp kc*NR.
            let acc = unsafe { micro_packed(xb.as_ptr(), pp.as_ptr(), kc) };
            store_block(&acc, rows, o, ib, j0, cols, first, bias);
        }
    }
}

/// Blocked GEMM: for each `KC` slice of `K`, `x` is packed once into
/// `MR_D`-row blocks, then each `NC × KC` tile of `W` is widened and packed
/// into `NR`-row panels and multiplied with every block.
#[allow(clippy::too_many_arguments)]
fn gemm<K: Kind>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[K::E],
    bias: Option<&[f32]>,
    n0: usize,
    n1: usize,
    mut o: Out<'_>,
) {
    let mb = m.div_ceil(MR_D);
    let mut xs = vec![0f32; mb * KC * MR_D];
    let mut panels = vec![0f32; NC * KC];
    let mut kb = 0;
    while kb < k {
        let kc = KC.min(k - kb);
        for (blk, xb) in xs.chunks_exact_mut(KC * MR_D).enumerate() {
            let rows = MR_D.min(m - blk * MR_D);
            // SAFETY: rows blk*MR_D.. < m and columns kb..kb+kc <= k of x (checked by matmul).
            unsafe { pack_x(x.as_ptr().add(blk * MR_D * k + kb), k, rows, kc, xb) };
        }
        let mut jb = n0;
        while jb < n1 {
            let nb = NC.min(n1 - jb);
            let np = nb.div_ceil(NR);
            for p in 0..np {
                let rows = NR.min(nb - p * NR);
                // SAFETY: rows jb+p*NR.. < n1 and columns kb..kb+kc <= k are in w.
                unsafe {
                    let wp = w.as_ptr().add((jb + p * NR) * k + kb);
                    pack::<K>(wp, k, rows, kc, &mut panels[p * KC * NR..]);
                }
            }
            let tile = Tile {
                jb,
                np,
                kc,
                n1,
                first: kb == 0,
            };
            compute_tile(&xs, m, &panels, &tile, bias, &mut o);
            jb += NC;
        }
        kb += KC;
    }
}

/// Transposes a `[K, N]` matrix (GPT-2 `Conv1D` weight) into the `[N, K]`
/// layout [`matmul`] expects, keeping only output rows `n0..n1` (a Worker's
/// share). Load-time only; works for any element type (f32 values, f16/bf16
/// bits).
///
/// # Errors
/// [`KernelError`] when `src` is shorter than `k*n` or `n0 > n1 > n`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::transpose;
/// let kn = [1u16, 2, 3, 4, 5, 6]; // [K=2, N=3]
/// assert_eq!(transpose(&kn, 2, 3, 0, 3).unwrap(), vec![1, 4, 2, 5, 3, 6]);
/// assert_eq!(transpose(&kn, 2, 3, 1, 2).unwrap(), vec![2, 5]);
/// ```
pub fn transpose<T: Copy + Default>(
    src: &[T],
    k: usize,
    n: usize,
    n0: usize,
    n1: usize,
) -> Result<Vec<T>, KernelError> {
    need(
        "transpose src [k, n]",
        src.len(),
        size("transpose src", &[k, n])?,
    )?;
    ensure(n0 <= n1 && n1 <= n, || {
        format!("transpose: row range {n0}..{n1} is not within 0..{n}")
    })?;
    let rows = n1 - n0;
    let mut out = vec![T::default(); rows * k];
    const B: usize = 32;
    for kb in (0..k).step_by(B) {
        for jb in (n0..n1).step_by(B) {
            for kk in kb..(kb + B).min(k) {
                let srow = &src[kk * n..kk * n + n];
                for j in jb..(jb + B).min(n1) {
                    out[(j - n0) * k + kk] = srow[j];
                }
            }
        }
    }
    Ok(out)
}
