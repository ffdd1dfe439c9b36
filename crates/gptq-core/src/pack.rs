// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! GPTQ bit packing (AutoGPTQ `QuantLinear.pack` layout, bits 2, 3, 4, 8).
//!
//! Values form one contiguous little-endian bitstream per packed axis:
//! value `k` starts at bit `bits*k`, in 32-bit word `floor(bits*k/32)` at
//! shift `bits*k mod 32`; a 3-bit value whose shift is above 29 straddles two
//! words. Every 32 values fill exactly `bits` words.
//!
//! * [`pack_rows`] packs codes `[K, N]` along K into `qweight [K*bits/32, N]`.
//! * [`pack_cols`] packs codes `[G, N]` along N into `qzeros [G, N*bits/32]`.
//!
//! Codes are unsigned and must be below `2^bits`; the packed words are `i32`
//! like the checkpoint tensors.

use core::fmt;

/// Why a pack/unpack call was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// `bits` is not 2, 3, 4 or 8.
    Bits(u32),
    /// The packed axis length is not a multiple of 32.
    NotMultipleOf32 {
        /// Which axis ("K" for rows, "N" for columns).
        axis: &'static str,
        /// Its length.
        len: usize,
    },
    /// A buffer does not have the length the shape implies.
    Length {
        /// Which buffer.
        what: &'static str,
        /// The length the shape implies.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A code does not fit in `bits`.
    CodeRange {
        /// Row of the offending code.
        row: usize,
        /// Column of the offending code.
        col: usize,
        /// The code.
        value: u32,
        /// The bit width.
        bits: u32,
    },
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::Bits(b) => write!(f, "unsupported bit width {b}: GPTQ packing supports 2, 3, 4 or 8 bits"),
            PackError::NotMultipleOf32 { axis, len } => write!(
                f,
                "{axis} = {len} is not a multiple of 32, so it cannot be packed into 32-bit words \
                 (keep this layer unquantized or use a shape whose packed axis is a multiple of 32)"
            ),
            PackError::Length { what, expected, actual } => {
                write!(f, "{what} has {actual} elements but the shape needs {expected}")
            }
            PackError::CodeRange { row, col, value, bits } => write!(
                f,
                "code {value} at row {row}, column {col} does not fit in {bits} bits (valid codes are 0..={})",
                (1u32 << bits) - 1
            ),
        }
    }
}

impl std::error::Error for PackError {}

fn check_bits(bits: u32) -> Result<(), PackError> {
    match bits {
        2 | 3 | 4 | 8 => Ok(()),
        b => Err(PackError::Bits(b)),
    }
}

fn check_axis(axis: &'static str, len: usize) -> Result<(), PackError> {
    if len.is_multiple_of(32) {
        Ok(())
    } else {
        Err(PackError::NotMultipleOf32 { axis, len })
    }
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), PackError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PackError::Length {
            what,
            expected,
            actual,
        })
    }
}

fn first_out_of_range(codes: &[u32], cols: usize, bits: u32) -> Result<(), PackError> {
    // Branch-free scan first (vectorizes); locate the culprit only on failure.
    let bad = codes.iter().fold(0u32, |acc, &c| acc | (c >> bits));
    if bad == 0 {
        return Ok(());
    }
    let i = codes.iter().position(|&c| c >> bits != 0).unwrap_or(0);
    Err(PackError::CodeRange {
        row: i / cols.max(1),
        col: i % cols.max(1),
        value: codes[i],
        bits,
    })
}

/// Number of packed rows of `qweight` for `k` input rows: `k * bits / 32`.
pub fn packed_len(len: usize, bits: u32) -> usize {
    len / 32 * bits as usize
}

/// Packs codes `[k, n]` (row-major) along `k` into `out` = `qweight [k*bits/32, n]`.
///
/// `out` is overwritten. `k` must be a multiple of 32 and every code below
/// `2^bits`.
pub fn pack_rows_into(
    codes: &[u32],
    k: usize,
    n: usize,
    bits: u32,
    out: &mut [i32],
) -> Result<(), PackError> {
    check_bits(bits)?;
    check_axis("K", k)?;
    check_len("codes", k * n, codes.len())?;
    check_len("qweight", packed_len(k, bits) * n, out.len())?;
    first_out_of_range(codes, n, bits)?;
    let b = bits as usize;
    for blk in 0..k / 32 {
        let out_blk = &mut out[blk * b * n..(blk + 1) * b * n];
        for j in 0..32 {
            let bit = b * j;
            let (w, s) = (bit / 32, (bit % 32) as u32);
            let row = &codes[(blk * 32 + j) * n..(blk * 32 + j + 1) * n];
            let (head, tail) = out_blk.split_at_mut((w + 1) * n);
            let dst = &mut head[w * n..];
            if s == 0 {
                rows::store(dst, row);
            } else {
                rows::or_shl(dst, row, s);
            }
            if s + bits > 32 {
                // Straddling 3-bit value: high bits start the next word.
                rows::or_shr(&mut tail[..n], row, 32 - s);
            }
        }
    }
    Ok(())
}

/// Packs codes `[k, n]` along `k` into a new `qweight [k*bits/32, n]`.
pub fn pack_rows(codes: &[u32], k: usize, n: usize, bits: u32) -> Result<Vec<i32>, PackError> {
    check_bits(bits)?;
    let mut out = vec![0i32; packed_len(k, bits) * n];
    pack_rows_into(codes, k, n, bits, &mut out)?;
    Ok(out)
}

/// Unpacks `qweight [k*bits/32, n]` into codes `[k, n]` written to `out`.
pub fn unpack_rows_into(
    qweight: &[i32],
    k: usize,
    n: usize,
    bits: u32,
    out: &mut [u32],
) -> Result<(), PackError> {
    check_bits(bits)?;
    check_axis("K", k)?;
    check_len("qweight", packed_len(k, bits) * n, qweight.len())?;
    check_len("codes", k * n, out.len())?;
    let b = bits as usize;
    let mask = (1u32 << bits) - 1;
    for blk in 0..k / 32 {
        let q_blk = &qweight[blk * b * n..(blk + 1) * b * n];
        for j in 0..32 {
            let bit = b * j;
            let (w, s) = (bit / 32, (bit % 32) as u32);
            let dst = &mut out[(blk * 32 + j) * n..(blk * 32 + j + 1) * n];
            let lo = &q_blk[w * n..(w + 1) * n];
            if s + bits > 32 {
                let hi = &q_blk[(w + 1) * n..(w + 2) * n];
                rows::extract2(dst, lo, hi, s, mask);
            } else {
                rows::extract(dst, lo, s, mask);
            }
        }
    }
    Ok(())
}

/// Unpacks `qweight [k*bits/32, n]` into new codes `[k, n]`.
pub fn unpack_rows(qweight: &[i32], k: usize, n: usize, bits: u32) -> Result<Vec<u32>, PackError> {
    let mut out = vec![0u32; k * n];
    unpack_rows_into(qweight, k, n, bits, &mut out)?;
    Ok(out)
}

/// Packs 32 codes into `bits` words (one bitstream chunk).
#[inline(always)]
fn pack_chunk(src: &[u32], bits: u32, dst: &mut [i32]) {
    let mut acc: u64 = 0;
    let mut fill = 0u32;
    let mut w = 0;
    for &c in &src[..32] {
        acc |= (c as u64) << fill;
        fill += bits;
        if fill >= 32 {
            dst[w] = acc as u32 as i32;
            w += 1;
            acc >>= 32;
            fill -= 32;
        }
    }
}

/// Unpacks `bits` words into 32 codes.
#[inline(always)]
fn unpack_chunk(src: &[i32], bits: u32, dst: &mut [u32]) {
    let mask = (1u64 << bits) - 1;
    let mut acc: u64 = 0;
    let mut avail = 0u32;
    let mut w = 0;
    for d in &mut dst[..32] {
        if avail < bits {
            acc |= (src[w] as u32 as u64) << avail;
            w += 1;
            avail += 32;
        }
        *d = (acc & mask) as u32;
        acc >>= bits;
        avail -= bits;
    }
}

/// Packs codes `[g, n]` along `n` into `out` = `qzeros [g, n*bits/32]`.
pub fn pack_cols_into(
    codes: &[u32],
    g: usize,
    n: usize,
    bits: u32,
    out: &mut [i32],
) -> Result<(), PackError> {
    check_bits(bits)?;
    check_axis("N", n)?;
    check_len("codes", g * n, codes.len())?;
    check_len("qzeros", g * packed_len(n, bits), out.len())?;
    first_out_of_range(codes, n, bits)?;
    let b = bits as usize;
    for (src, dst) in codes.chunks_exact(32).zip(out.chunks_exact_mut(b)) {
        pack_chunk(src, bits, dst);
    }
    Ok(())
}

/// Packs codes `[g, n]` along `n` into a new `qzeros [g, n*bits/32]`.
pub fn pack_cols(codes: &[u32], g: usize, n: usize, bits: u32) -> Result<Vec<i32>, PackError> {
    check_bits(bits)?;
    let mut out = vec![0i32; g * packed_len(n, bits)];
    pack_cols_into(codes, g, n, bits, &mut out)?;
    Ok(out)
}

/// Unpacks `qzeros [g, n*bits/32]` into codes `[g, n]` written to `out`.
pub fn unpack_cols_into(
    packed: &[i32],
    g: usize,
    n: usize,
    bits: u32,
    out: &mut [u32],
) -> Result<(), PackError> {
    check_bits(bits)?;
    check_axis("N", n)?;
    check_len("qzeros", g * packed_len(n, bits), packed.len())?;
    check_len("codes", g * n, out.len())?;
    let b = bits as usize;
    for (src, dst) in packed.chunks_exact(b).zip(out.chunks_exact_mut(32)) {
        unpack_chunk(src, bits, dst);
    }
    Ok(())
}

/// Unpacks `qzeros [g, n*bits/32]` into new codes `[g, n]`.
pub fn unpack_cols(packed: &[i32], g: usize, n: usize, bits: u32) -> Result<Vec<u32>, PackError> {
    let mut out = vec![0u32; g * n];
    unpack_cols_into(packed, g, n, bits, &mut out)?;
    Ok(out)
}

/// Row kernels: `dst[i] op= f(src[i])` over whole rows.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod rows {
    #[inline]
    pub fn store(dst: &mut [i32], src: &[u32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as i32;
        }
    }
    #[inline]
    pub fn or_shl(dst: &mut [i32], src: &[u32], s: u32) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d |= (v << s) as i32;
        }
    }
    #[inline]
    pub fn or_shr(dst: &mut [i32], src: &[u32], s: u32) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d |= (v >> s) as i32;
        }
    }
    #[inline]
    pub fn extract(dst: &mut [u32], src: &[i32], s: u32, mask: u32) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = ((v as u32) >> s) & mask;
        }
    }
    #[inline]
    pub fn extract2(dst: &mut [u32], lo: &[i32], hi: &[i32], s: u32, mask: u32) {
        for ((d, &a), &b) in dst.iter_mut().zip(lo).zip(hi) {
            *d = (((a as u32) >> s) | ((b as u32) << (32 - s))) & mask;
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod rows {
    use core::arch::wasm32::*;

    // All slices of one call have equal length (the row length n).

    #[inline]
    pub fn store(dst: &mut [i32], src: &[u32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as i32;
        }
    }

    macro_rules! simd_rows {
        ($dst:ident, $n:expr, |$i:ident| $vec:expr, |$j:ident| $scalar:expr) => {{
            let n = $n;
            let nv = n / 4 * 4;
            let mut $i = 0;
            while $i < nv {
                // SAFETY: $i + 4 <= n for every slice involved.
                unsafe { v128_store($dst.as_mut_ptr().add($i) as *mut v128, $vec) };
                $i += 4;
            }
            for $j in nv..n {
                $dst[$j] = $scalar;
            }
        }};
    }

    #[inline]
    pub fn or_shl(dst: &mut [i32], src: &[u32], s: u32) {
        let n = dst.len().min(src.len());
        simd_rows!(
            dst,
            n,
            |i| v128_or(
                v128_load(dst.as_ptr().add(i) as *const v128),
                i32x4_shl(v128_load(src.as_ptr().add(i) as *const v128), s)
            ),
            |j| dst[j] | (src[j] << s) as i32
        );
    }

    #[inline]
    pub fn or_shr(dst: &mut [i32], src: &[u32], s: u32) {
        let n = dst.len().min(src.len());
        simd_rows!(
            dst,
            n,
            |i| v128_or(
                v128_load(dst.as_ptr().add(i) as *const v128),
                u32x4_shr(v128_load(src.as_ptr().add(i) as *const v128), s)
            ),
            |j| dst[j] | (src[j] >> s) as i32
        );
    }

    #[inline]
    pub fn extract(dst: &mut [u32], src: &[i32], s: u32, mask: u32) {
        let n = dst.len().min(src.len());
        let m = u32x4_splat(mask);
        simd_rows!(
            dst,
            n,
            |i| v128_and(
                u32x4_shr(v128_load(src.as_ptr().add(i) as *const v128), s),
                m
            ),
            |j| ((src[j] as u32) >> s) & mask
        );
    }

    #[inline]
    pub fn extract2(dst: &mut [u32], lo: &[i32], hi: &[i32], s: u32, mask: u32) {
        let n = dst.len().min(lo.len()).min(hi.len());
        let m = u32x4_splat(mask);
        simd_rows!(
            dst,
            n,
            |i| v128_and(
                v128_or(
                    u32x4_shr(v128_load(lo.as_ptr().add(i) as *const v128), s),
                    i32x4_shl(v128_load(hi.as_ptr().add(i) as *const v128), 32 - s)
                ),
                m
            ),
            |j| (((lo[j] as u32) >> s) | ((hi[j] as u32) << (32 - s))) & mask
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit reference of the bitstream rule.
    fn ref_pack_stream(vals: &[u32], bits: u32) -> Vec<i32> {
        let mut out = vec![0u32; vals.len() * bits as usize / 32];
        for (k, &v) in vals.iter().enumerate() {
            for t in 0..bits as usize {
                if (v >> t) & 1 == 1 {
                    let bit = k * bits as usize + t;
                    out[bit / 32] |= 1 << (bit % 32);
                }
            }
        }
        out.into_iter().map(|w| w as i32).collect()
    }

    fn codes(len: usize, bits: u32, seed: u32) -> Vec<u32> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s & ((1 << bits) - 1)
            })
            .collect()
    }

    #[test]
    fn rows_match_bitstream_reference() {
        for bits in [2, 3, 4, 8] {
            let (k, n) = (96, 7);
            let c = codes(k * n, bits, bits * 77);
            let q = pack_rows(&c, k, n, bits).unwrap();
            let kp = k * bits as usize / 32;
            for col in 0..n {
                let column: Vec<u32> = (0..k).map(|r| c[r * n + col]).collect();
                let want = ref_pack_stream(&column, bits);
                let got: Vec<i32> = (0..kp).map(|r| q[r * n + col]).collect();
                assert_eq!(got, want, "bits {bits} col {col}");
            }
            assert_eq!(unpack_rows(&q, k, n, bits).unwrap(), c);
        }
    }

    #[test]
    fn cols_match_bitstream_reference() {
        for bits in [2, 3, 4, 8] {
            let (g, n) = (5, 64);
            let c = codes(g * n, bits, bits * 91);
            let q = pack_cols(&c, g, n, bits).unwrap();
            let np = n * bits as usize / 32;
            for r in 0..g {
                assert_eq!(
                    &q[r * np..(r + 1) * np],
                    &ref_pack_stream(&c[r * n..(r + 1) * n], bits)[..]
                );
            }
            assert_eq!(unpack_cols(&q, g, n, bits).unwrap(), c);
        }
    }

    #[test]
    fn symmetric_v1_zero_constants() {
        // gptq-reference §1.4: stored zero 2^(b-1)-1 gives these words.
        let cases: [(u32, &[u32]); 4] = [
            (2, &[0x5555_5555, 0x5555_5555]),
            (4, &[0x7777_7777; 4]),
            (8, &[0x7f7f_7f7f; 8]),
            (3, &[0xDB6D_B6DB, 0xB6DB_6DB6, 0x6DB6_DB6D]),
        ];
        for (bits, want) in cases {
            let c = vec![(1u32 << (bits - 1)) - 1; 64];
            let q = pack_cols(&c, 1, 64, bits).unwrap();
            let want: Vec<i32> = want
                .iter()
                .cycle()
                .take(q.len())
                .map(|&w| w as i32)
                .collect();
            assert_eq!(q, want, "bits {bits}");
        }
    }

    #[test]
    fn three_bit_straddles() {
        // Value 10 = 0b111 lands at bits 30..32: two low bits in word 0, one in word 1.
        let mut c = vec![0u32; 32];
        c[10] = 7;
        c[21] = 5;
        let q = pack_cols(&c, 1, 32, 3).unwrap();
        assert_eq!(q, vec![(0b11u32 << 30) as i32, 1 | (1 << 31), 0b10]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            pack_rows(&[0; 64], 2, 32, 4),
            Err(PackError::NotMultipleOf32 { axis: "K", len: 2 })
        );
        assert_eq!(pack_rows(&[0; 64], 32, 2, 5), Err(PackError::Bits(5)));
        assert_eq!(
            pack_rows(&[0; 63], 32, 2, 4),
            Err(PackError::Length {
                what: "codes",
                expected: 64,
                actual: 63
            })
        );
        let mut c = vec![0u32; 64];
        c[33] = 16;
        assert_eq!(
            pack_rows(&c, 32, 2, 4),
            Err(PackError::CodeRange {
                row: 16,
                col: 1,
                value: 16,
                bits: 4
            })
        );
        assert_eq!(
            pack_cols(&c, 2, 32, 4),
            Err(PackError::CodeRange {
                row: 1,
                col: 1,
                value: 16,
                bits: 4
            })
        );
        assert!(PackError::NotMultipleOf32 {
            axis: "K",
            len: 172
        }
        .to_string()
        .contains("172"));
    }
}
