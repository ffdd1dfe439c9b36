// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Conversions between IEEE half precision (f16), bfloat16 and f32.
//!
//! Widening (f16/bf16 → f32) is exact. Narrowing (f32 → f16/bf16) rounds to
//! nearest, ties to even, like torch's `.half()` / `.bfloat16()`; overflow
//! gives ±Inf. NaNs stay NaNs with the quiet bit set and the top payload bits
//! kept (what x86 `vcvtps2ph` and the toolkit's TypeScript `dtype.ts` do).
//!
//! The slice functions use wasm SIMD128 on `wasm32` targets built with
//! `+simd128` and a scalar loop elsewhere; both give identical bits.

/// Converts one f16 bit pattern to f32 (exact).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    let bits = if exp == 0x1f {
        sign | 0x7f80_0000 | (mant << 13)
    } else if exp != 0 {
        sign | ((exp + 112) << 23) | (mant << 13)
    } else if mant == 0 {
        sign
    } else {
        // Subnormal: mant * 2^-24 is exact in f32.
        let v = mant as f32 * (1.0 / 16_777_216.0);
        sign | v.to_bits()
    };
    f32::from_bits(bits)
}

/// Converts one bf16 bit pattern to f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Converts an f32 to the nearest f16 bit pattern (ties to even).
#[inline]
pub fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let mut mant = x & 0x7f_ffff;
    if exp == 0xff {
        return sign
            | 0x7c00
            | if mant != 0 {
                0x200 | (mant >> 13) as u16
            } else {
                0
            };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        mant |= 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = mant & ((1u32 << shift) - 1);
        let mut r = mant >> shift;
        if rem > half || (rem == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    // Adding the carry may overflow into the exponent: that is correct
    // (rounds up to the next binade, or to Inf at the top).
    let mut r = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) {
        r += 1;
    }
    sign | r as u16
}

/// Converts an f32 to the nearest bf16 bit pattern (ties to even).
#[inline]
pub fn f32_to_bf16(v: f32) -> u16 {
    let x = v.to_bits();
    if (x & 0x7fff_ffff) > 0x7f80_0000 {
        return ((x >> 16) | 0x40) as u16;
    }
    (x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16
}

/// Error for slices of different lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthMismatch {
    /// Length of the source slice.
    pub src: usize,
    /// Length of the destination slice.
    pub dst: usize,
}

impl core::fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "source has {} elements but destination has {}",
            self.src, self.dst
        )
    }
}

fn check_len(src: usize, dst: usize) -> Result<(), LengthMismatch> {
    if src == dst {
        Ok(())
    } else {
        Err(LengthMismatch { src, dst })
    }
}

/// Widens f16 bit patterns into `dst` (same length).
pub fn f16_slice_to_f32(src: &[u16], dst: &mut [f32]) -> Result<(), LengthMismatch> {
    check_len(src.len(), dst.len())?;
    let done = simd::f16_to_f32(src, dst);
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = f16_to_f32(s);
    }
    Ok(())
}

/// Widens bf16 bit patterns into `dst` (same length).
pub fn bf16_slice_to_f32(src: &[u16], dst: &mut [f32]) -> Result<(), LengthMismatch> {
    check_len(src.len(), dst.len())?;
    let done = simd::bf16_to_f32(src, dst);
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = bf16_to_f32(s);
    }
    Ok(())
}

/// Narrows f32 values to f16 bit patterns in `dst` (same length).
pub fn f32_slice_to_f16(src: &[f32], dst: &mut [u16]) -> Result<(), LengthMismatch> {
    check_len(src.len(), dst.len())?;
    let done = simd::f32_to_f16(src, dst);
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = f32_to_f16(s);
    }
    Ok(())
}

/// Narrows f32 values to bf16 bit patterns in `dst` (same length).
pub fn f32_slice_to_bf16(src: &[f32], dst: &mut [u16]) -> Result<(), LengthMismatch> {
    check_len(src.len(), dst.len())?;
    let done = simd::f32_to_bf16(src, dst);
    for (d, &s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = f32_to_bf16(s);
    }
    Ok(())
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    /// Widens f16 patterns held in u32 lanes to f32 bits. Integer-only except
    /// for subnormals, which go through an int→float conversion so no lane
    /// ever does arithmetic on a denormal (slow on x86 hosts).
    #[inline(always)]
    fn widen_f16(h: v128) -> v128 {
        let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
        let em = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
        let normal = i32x4_add(em, u32x4_splat(112 << 23));
        let sub = f32x4_mul(
            f32x4_convert_i32x4(v128_and(h, u32x4_splat(0x3ff))),
            f32x4_splat(1.0 / 16_777_216.0),
        );
        let is_sub = i32x4_eq(v128_and(h, u32x4_splat(0x7c00)), u32x4_splat(0));
        let is_infnan = u32x4_ge(em, u32x4_splat(0x7c00 << 13));
        let infnan = v128_or(em, u32x4_splat(0x7f80_0000));
        let r = v128_bitselect(sub, normal, is_sub);
        v128_or(sign, v128_bitselect(infnan, r, is_infnan))
    }

    pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) -> usize {
        let n = src.len() / 8 * 8;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= len for both slices (equal lengths checked).
            unsafe {
                let v = v128_load(src.as_ptr().add(i) as *const v128);
                let lo = widen_f16(u32x4_extend_low_u16x8(v));
                let hi = widen_f16(u32x4_extend_high_u16x8(v));
                v128_store(dst.as_mut_ptr().add(i) as *mut v128, lo);
                v128_store(dst.as_mut_ptr().add(i + 4) as *mut v128, hi);
            }
            i += 8;
        }
        n
    }

    pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) -> usize {
        let n = src.len() / 8 * 8;
        let zero = u32x4_splat(0);
        let mut i = 0;
        while i < n {
            // SAFETY: as above.
            unsafe {
                let v = v128_load(src.as_ptr().add(i) as *const v128);
                let lo = i16x8_shuffle::<8, 0, 9, 1, 10, 2, 11, 3>(v, zero);
                let hi = i16x8_shuffle::<12, 4, 13, 5, 14, 6, 15, 7>(v, zero);
                v128_store(dst.as_mut_ptr().add(i) as *mut v128, lo);
                v128_store(dst.as_mut_ptr().add(i + 4) as *mut v128, hi);
            }
            i += 8;
        }
        n
    }

    /// RNE f32 → bf16 bits in the low 16 bits of each u32 lane.
    #[inline(always)]
    fn narrow_bf16(x: v128) -> v128 {
        let lsb = v128_and(u32x4_shr(x, 16), u32x4_splat(1));
        let rounded = u32x4_shr(i32x4_add(i32x4_add(x, u32x4_splat(0x7fff)), lsb), 16);
        let nan = v128_or(u32x4_shr(x, 16), u32x4_splat(0x40));
        let is_nan = u32x4_gt(
            v128_and(x, u32x4_splat(0x7fff_ffff)),
            u32x4_splat(0x7f80_0000),
        );
        v128_bitselect(nan, rounded, is_nan)
    }

    pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) -> usize {
        let n = src.len() / 8 * 8;
        let mut i = 0;
        while i < n {
            // SAFETY: as above.
            unsafe {
                let a = narrow_bf16(v128_load(src.as_ptr().add(i) as *const v128));
                let b = narrow_bf16(v128_load(src.as_ptr().add(i + 4) as *const v128));
                let packed = i16x8_shuffle::<0, 2, 4, 6, 8, 10, 12, 14>(a, b);
                v128_store(dst.as_mut_ptr().add(i) as *mut v128, packed);
            }
            i += 8;
        }
        n
    }

    /// RNE f32 → f16 bits in the low 16 bits of each u32 lane, using the
    /// float-add rounding trick for subnormals (F. Giesen's
    /// `float_to_half_fast3_rtne`), extended to keep NaN payloads.
    #[inline(always)]
    fn narrow_f16(x: v128) -> v128 {
        let sign = u32x4_shr(v128_and(x, u32x4_splat(0x8000_0000)), 16);
        let a = v128_and(x, u32x4_splat(0x7fff_ffff));
        // Normal-range path: rebias exponent and round the low 13 bits.
        let lsb = v128_and(u32x4_shr(a, 13), u32x4_splat(1));
        let normal = u32x4_shr(
            i32x4_add(
                i32x4_add(
                    a,
                    u32x4_splat(((15u32.wrapping_sub(127)) << 23).wrapping_add(0xfff)),
                ),
                lsb,
            ),
            13,
        );
        // Subnormal path: adding 0.5 (as f32) aligns the mantissa so the FPU
        // rounds to nearest even at the f16 subnormal step.
        let denorm_magic = f32x4_splat(f32::from_bits(((127 - 15) + (23 - 10) + 1) << 23));
        let sub = i32x4_sub(f32x4_add(a, denorm_magic), denorm_magic);
        let is_sub = u32x4_lt(a, u32x4_splat(113 << 23));
        let finite = v128_bitselect(sub, normal, is_sub);
        // Overflow (including values that round up past 65504) → Inf.
        let is_over = u32x4_ge(a, u32x4_splat(0x4780_0000 - 0x1000));
        let is_over = v128_and(is_over, u32x4_le(a, u32x4_splat(0x7f80_0000)));
        let nan = v128_or(
            u32x4_splat(0x7e00),
            v128_and(u32x4_shr(a, 13), u32x4_splat(0x3ff)),
        );
        let is_nan = u32x4_gt(a, u32x4_splat(0x7f80_0000));
        let r = v128_bitselect(u32x4_splat(0x7c00), finite, is_over);
        let r = v128_bitselect(nan, r, is_nan);
        v128_or(r, sign)
    }

    pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) -> usize {
        let n = src.len() / 8 * 8;
        let mut i = 0;
        while i < n {
            // SAFETY: as above.
            unsafe {
                let a = narrow_f16(v128_load(src.as_ptr().add(i) as *const v128));
                let b = narrow_f16(v128_load(src.as_ptr().add(i + 4) as *const v128));
                let packed = i16x8_shuffle::<0, 2, 4, 6, 8, 10, 12, 14>(a, b);
                v128_store(dst.as_mut_ptr().add(i) as *mut v128, packed);
            }
            i += 8;
        }
        n
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod simd {
    pub fn f16_to_f32(_: &[u16], _: &mut [f32]) -> usize {
        0
    }
    pub fn bf16_to_f32(_: &[u16], _: &mut [f32]) -> usize {
        0
    }
    pub fn f32_to_f16(_: &[f32], _: &mut [u16]) -> usize {
        0
    }
    pub fn f32_to_bf16(_: &[f32], _: &mut [u16]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }

    #[test]
    fn f16_round_trip_all_patterns() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            // NaNs come back quieted (bit 9 set), everything else unchanged.
            let want = if f.is_nan() { h | 0x200 } else { h };
            assert_eq!(f32_to_f16(f), want, "pattern {h:#06x}");
        }
    }

    #[test]
    fn f32_to_f16_ties_to_even() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: rounds to 1 (even).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: rounds up to even.
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000); // tie to even zero
        assert_eq!(f32_to_f16(2f32.powi(-25) * 1.000_001), 0x0001);
        assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 0x0002); // tie to even
    }

    #[test]
    fn f32_to_f16_matches_f64_reference() {
        // Reference: round in f64 to the f16 grid, ties to even.
        let mut s = 0x1234_5678u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let v = f32::from_bits(s);
            if !v.is_finite() {
                continue;
            }
            let got = f16_to_f32(f32_to_f16(v)) as f64;
            let want = ref_round_f16(v as f64);
            assert!(
                got == want || (got == 0.0 && want == 0.0),
                "{v:e}: {got} vs {want}"
            );
        }
    }

    fn ref_round_f16(v: f64) -> f64 {
        let a = v.abs();
        if a >= 65520.0 {
            return f64::INFINITY.copysign(v);
        }
        let e = if a < 2f64.powi(-14) {
            -14
        } else {
            a.log2().floor() as i32
        };
        let step = 2f64.powi(e - 10);
        let q = a / step;
        let fl = q.floor();
        let r = if q - fl > 0.5 || (q - fl == 0.5 && fl % 2.0 == 1.0) {
            fl + 1.0
        } else {
            fl
        };
        (r * step).copysign(v)
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie → even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie → even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f7f_ffff)), 0x7f80); // overflow → Inf
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        for h in 0..=u16::MAX {
            let f = bf16_to_f32(h);
            let want = if f.is_nan() { h | 0x40 } else { h };
            assert_eq!(f32_to_bf16(f), want);
        }
    }

    #[test]
    fn slices_check_lengths() {
        let mut out = [0f32; 3];
        assert_eq!(
            f16_slice_to_f32(&[0x3c00; 2], &mut out),
            Err(LengthMismatch { src: 2, dst: 3 })
        );
        let mut out = [0f32; 11];
        f16_slice_to_f32(&[0x3c00; 11], &mut out).unwrap();
        assert!(out.iter().all(|&x| x == 1.0));
    }
}
