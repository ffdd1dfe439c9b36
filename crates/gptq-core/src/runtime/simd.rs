// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! A four-lane f32 vector, the only SIMD abstraction the runtime kernels use.
//!
//! On `wasm32` built with `+simd128` it wraps `core::arch::wasm32::v128` and
//! every method is one or a few SIMD128 instructions (with `+relaxed-simd`,
//! [`F4::fma`] becomes `f32x4.relaxed_madd`). On x86-64 (native tests and
//! benchmarks) it wraps an SSE2 `__m128` with the same operations, so native
//! numbers reflect the 4-lane design. Elsewhere (e.g. aarch64) it is a
//! `[f32; 4]` with lane-wise loops that LLVM vectorizes.
//!
//! Loads and stores take raw pointers because the micro-kernels index with
//! computed offsets; every caller checks bounds once per block, not per lane.

/// `2^112`: multiplies an f16 exponent/mantissa shifted into f32 position
/// back to the right magnitude (handles f16 subnormals too).
const F16_SCALE: f32 = f32::from_bits((127 + 112) << 23);

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use super::F16_SCALE;
    use core::arch::wasm32::*;

    /// Four f32 lanes in one `v128`.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct F4(v128);

    impl F4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F4(f32x4_splat(0.0))
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F4(f32x4_splat(v))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self {
            F4(v128_load(p as *const v128))
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16(p: *const u16) -> Self {
            let h = u32x4_load_extend_u16x4(p);
            let sign = u32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
            let em = v128_and(h, u32x4_splat(0x7fff));
            let mag = f32x4_mul(u32x4_shl(em, 13), f32x4_splat(F16_SCALE));
            let special = v128_and(u32x4_ge(em, u32x4_splat(0x7c00)), u32x4_splat(0x7f80_0000));
            F4(v128_or(v128_or(mag, special), sign))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_bf16(p: *const u16) -> Self {
            F4(u32x4_shl(u32x4_load_extend_u16x4(p), 16))
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            F4(f32x4_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self {
            F4(f32x4_sub(self.0, o.0))
        }
        /// Lane-wise maximum; a NaN in `self` stays NaN.
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            F4(f32x4_pmax(self.0, o.0))
        }
        /// The lanes' bit patterns.
        #[inline(always)]
        pub fn bits(self) -> I4 {
            I4(self.0)
        }
        /// Four `u8` at `p` widened to f32.
        ///
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_u8(p: *const u8) -> Self {
            let v = v128_load32_zero(p as *const u32);
            F4(f32x4_convert_i32x4(u32x4_extend_low_u16x8(
                u16x8_extend_low_u8x16(v),
            )))
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            F4(f32x4_mul(self.0, o.0))
        }
        /// `self + a * b`.
        #[cfg(target_feature = "relaxed-simd")]
        #[inline(always)]
        pub fn fma(self, a: Self, b: Self) -> Self {
            F4(f32x4_relaxed_madd(a.0, b.0, self.0))
        }
        /// `self + a * b`.
        #[cfg(not(target_feature = "relaxed-simd"))]
        #[inline(always)]
        pub fn fma(self, a: Self, b: Self) -> Self {
            F4(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
        }
        /// Lane `L` in all four lanes (a register shuffle, no memory access).
        #[inline(always)]
        pub fn dup<const L: usize>(self) -> Self {
            F4(i32x4_shuffle::<L, L, L, L>(self.0, self.0))
        }
        /// Transposes a 4×4 block held as four rows.
        #[inline(always)]
        pub fn transpose4(r: [Self; 4]) -> [Self; 4] {
            let t0 = i32x4_shuffle::<0, 4, 1, 5>(r[0].0, r[1].0);
            let t1 = i32x4_shuffle::<2, 6, 3, 7>(r[0].0, r[1].0);
            let t2 = i32x4_shuffle::<0, 4, 1, 5>(r[2].0, r[3].0);
            let t3 = i32x4_shuffle::<2, 6, 3, 7>(r[2].0, r[3].0);
            [
                F4(i64x2_shuffle::<0, 2>(t0, t2)),
                F4(i64x2_shuffle::<1, 3>(t0, t2)),
                F4(i64x2_shuffle::<0, 2>(t1, t3)),
                F4(i64x2_shuffle::<1, 3>(t1, t3)),
            ]
        }
        #[inline(always)]
        pub fn hsum(self) -> f32 {
            let s = f32x4_add(self.0, i32x4_shuffle::<2, 3, 0, 1>(self.0, self.0));
            let s = f32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
            f32x4_extract_lane::<0>(s)
        }
    }

    /// Four u32 lanes in one `v128` (packed GPTQ codes).
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct I4(v128);

    impl I4 {
        #[inline(always)]
        pub fn splat(v: u32) -> Self {
            I4(u32x4_splat(v))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u32) -> Self {
            I4(v128_load(p as *const v128))
        }
        /// Logical shift right (`s < 32`).
        #[inline(always)]
        pub fn shr(self, s: u32) -> Self {
            I4(u32x4_shr(self.0, s))
        }
        /// Shift left (`s < 32`).
        #[inline(always)]
        pub fn shl(self, s: u32) -> Self {
            I4(i32x4_shl(self.0, s))
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            I4(v128_and(self.0, o.0))
        }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self {
            I4(v128_or(self.0, o.0))
        }
        /// Wrapping lane-wise addition.
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            I4(i32x4_add(self.0, o.0))
        }
        /// The lanes as f32 bit patterns.
        #[inline(always)]
        pub fn to_bits_f32(self) -> F4 {
            F4(self.0)
        }
        /// Lanes (below 2^31) converted to f32.
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            F4(f32x4_convert_i32x4(self.0))
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::F16_SCALE;
    use core::arch::x86_64::*;

    /// Four f32 lanes in one SSE2 register (SSE2 is baseline on x86-64, so
    /// native builds mirror the wasm SIMD128 code instruction for instruction).
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct F4(__m128);

    impl F4 {
        #[inline(always)]
        pub fn zero() -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_setzero_ps() })
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_set1_ps(v) })
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self {
            F4(_mm_loadu_ps(p))
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            _mm_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn load_u16x4(p: *const u16) -> __m128i {
            _mm_unpacklo_epi16(_mm_loadl_epi64(p as *const __m128i), _mm_setzero_si128())
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16(p: *const u16) -> Self {
            let h = Self::load_u16x4(p);
            let sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
            let em = _mm_and_si128(h, _mm_set1_epi32(0x7fff));
            let mag = _mm_mul_ps(
                _mm_castsi128_ps(_mm_slli_epi32(em, 13)),
                _mm_set1_ps(F16_SCALE),
            );
            let special = _mm_and_si128(
                _mm_cmpgt_epi32(em, _mm_set1_epi32(0x7bff)),
                _mm_set1_epi32(0x7f80_0000),
            );
            F4(_mm_or_ps(
                _mm_or_ps(mag, _mm_castsi128_ps(special)),
                _mm_castsi128_ps(sign),
            ))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_bf16(p: *const u16) -> Self {
            F4(_mm_castsi128_ps(_mm_slli_epi32(Self::load_u16x4(p), 16)))
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_sub_ps(self.0, o.0) })
        }
        /// Lane-wise maximum; a NaN in `self` stays NaN.
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline. maxps returns its
            // second operand when either is NaN.
            F4(unsafe { _mm_max_ps(o.0, self.0) })
        }
        /// The lanes' bit patterns.
        #[inline(always)]
        pub fn bits(self) -> I4 {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_castps_si128(self.0) })
        }
        /// Four `u8` at `p` widened to f32.
        ///
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_u8(p: *const u8) -> Self {
            let v = _mm_cvtsi32_si128((p as *const i32).read_unaligned());
            let z = _mm_setzero_si128();
            F4(_mm_cvtepi32_ps(_mm_unpacklo_epi16(
                _mm_unpacklo_epi8(v, z),
                z,
            )))
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_mul_ps(self.0, o.0) })
        }
        /// `self + a * b` (unfused, like wasm SIMD128 without relaxed-simd).
        #[inline(always)]
        pub fn fma(self, a: Self, b: Self) -> Self {
            self.add(a.mul(b))
        }
        /// Lane `L` in all four lanes (a register shuffle, no memory access).
        #[inline(always)]
        pub fn dup<const L: usize>(self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe {
                F4(match L {
                    0 => _mm_shuffle_ps::<0x00>(self.0, self.0),
                    1 => _mm_shuffle_ps::<0x55>(self.0, self.0),
                    2 => _mm_shuffle_ps::<0xaa>(self.0, self.0),
                    _ => _mm_shuffle_ps::<0xff>(self.0, self.0),
                })
            }
        }
        /// Transposes a 4×4 block held as four rows.
        #[inline(always)]
        pub fn transpose4(r: [Self; 4]) -> [Self; 4] {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe {
                let t0 = _mm_unpacklo_ps(r[0].0, r[1].0);
                let t1 = _mm_unpackhi_ps(r[0].0, r[1].0);
                let t2 = _mm_unpacklo_ps(r[2].0, r[3].0);
                let t3 = _mm_unpackhi_ps(r[2].0, r[3].0);
                [
                    F4(_mm_movelh_ps(t0, t2)),
                    F4(_mm_movehl_ps(t2, t0)),
                    F4(_mm_movelh_ps(t1, t3)),
                    F4(_mm_movehl_ps(t3, t1)),
                ]
            }
        }
        #[inline(always)]
        pub fn hsum(self) -> f32 {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe {
                let s = _mm_add_ps(self.0, _mm_movehl_ps(self.0, self.0));
                let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
                _mm_cvtss_f32(s)
            }
        }
    }

    /// Four u32 lanes in one SSE2 register (packed GPTQ codes).
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct I4(__m128i);

    impl I4 {
        #[inline(always)]
        pub fn splat(v: u32) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_set1_epi32(v as i32) })
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u32) -> Self {
            I4(_mm_loadu_si128(p as *const __m128i))
        }
        /// Logical shift right (`s < 32`; constant-folded to an immediate).
        #[inline(always)]
        pub fn shr(self, s: u32) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_srl_epi32(self.0, _mm_cvtsi32_si128(s as i32)) })
        }
        /// Shift left (`s < 32`).
        #[inline(always)]
        pub fn shl(self, s: u32) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_sll_epi32(self.0, _mm_cvtsi32_si128(s as i32)) })
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_and_si128(self.0, o.0) })
        }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_or_si128(self.0, o.0) })
        }
        /// Wrapping lane-wise addition.
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            I4(unsafe { _mm_add_epi32(self.0, o.0) })
        }
        /// The lanes as f32 bit patterns.
        #[inline(always)]
        pub fn to_bits_f32(self) -> F4 {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_castsi128_ps(self.0) })
        }
        /// Lanes (below 2^31) converted to f32.
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            F4(unsafe { _mm_cvtepi32_ps(self.0) })
        }
    }
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
mod imp {
    use super::F16_SCALE;

    /// Four f32 lanes; lane-wise loops that LLVM vectorizes.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct F4([f32; 4]);

    impl F4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F4([0.0; 4])
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F4([v; 4])
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self {
            F4((p as *const [f32; 4]).read_unaligned())
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            (p as *mut [f32; 4]).write_unaligned(self.0)
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16(p: *const u16) -> Self {
            let h = (p as *const [u16; 4]).read_unaligned();
            let mut out = [0f32; 4];
            for (o, &h) in out.iter_mut().zip(h.iter()) {
                let h = h as u32;
                let em = h & 0x7fff;
                let mag = f32::from_bits(em << 13) * F16_SCALE;
                // em >= 0x7c00 (Inf/NaN) <=> bit 15 of em + 0x400; branch-free.
                let special = 0u32.wrapping_sub((em + 0x400) >> 15) & 0x7f80_0000;
                *o = f32::from_bits(mag.to_bits() | special | ((h & 0x8000) << 16));
            }
            F4(out)
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_bf16(p: *const u16) -> Self {
            let h = (p as *const [u16; 4]).read_unaligned();
            F4([
                f32::from_bits((h[0] as u32) << 16),
                f32::from_bits((h[1] as u32) << 16),
                f32::from_bits((h[2] as u32) << 16),
                f32::from_bits((h[3] as u32) << 16),
            ])
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            F4([
                self.0[0] + o.0[0],
                self.0[1] + o.0[1],
                self.0[2] + o.0[2],
                self.0[3] + o.0[3],
            ])
        }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self {
            F4([
                self.0[0] - o.0[0],
                self.0[1] - o.0[1],
                self.0[2] - o.0[2],
                self.0[3] - o.0[3],
            ])
        }
        /// Lane-wise maximum; a NaN in `self` stays NaN.
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            F4(core::array::from_fn(|i| {
                if self.0[i] < o.0[i] {
                    o.0[i]
                } else {
                    self.0[i]
                }
            }))
        }
        /// The lanes' bit patterns.
        #[inline(always)]
        pub fn bits(self) -> I4 {
            I4(self.0.map(f32::to_bits))
        }
        /// Four `u8` at `p` widened to f32.
        ///
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_u8(p: *const u8) -> Self {
            let v = (p as *const [u8; 4]).read_unaligned();
            F4([v[0] as f32, v[1] as f32, v[2] as f32, v[3] as f32])
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            F4([
                self.0[0] * o.0[0],
                self.0[1] * o.0[1],
                self.0[2] * o.0[2],
                self.0[3] * o.0[3],
            ])
        }
        /// `self + a * b` (unfused natively: a libm `fmaf` call would be slower).
        #[inline(always)]
        pub fn fma(self, a: Self, b: Self) -> Self {
            self.add(a.mul(b))
        }
        /// Lane `L` in all four lanes.
        #[inline(always)]
        pub fn dup<const L: usize>(self) -> Self {
            F4([self.0[L]; 4])
        }
        /// Transposes a 4×4 block held as four rows.
        #[inline(always)]
        pub fn transpose4(r: [Self; 4]) -> [Self; 4] {
            let m = r.map(|v| v.0);
            core::array::from_fn(|i| F4([m[0][i], m[1][i], m[2][i], m[3][i]]))
        }
        #[inline(always)]
        pub fn hsum(self) -> f32 {
            (self.0[0] + self.0[2]) + (self.0[1] + self.0[3])
        }
    }

    /// Four u32 lanes (packed GPTQ codes).
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct I4([u32; 4]);

    impl I4 {
        #[inline(always)]
        pub fn splat(v: u32) -> Self {
            I4([v; 4])
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u32) -> Self {
            I4((p as *const [u32; 4]).read_unaligned())
        }
        /// Logical shift right (`s < 32`).
        #[inline(always)]
        pub fn shr(self, s: u32) -> Self {
            I4(self.0.map(|v| v >> s))
        }
        /// Shift left (`s < 32`).
        #[inline(always)]
        pub fn shl(self, s: u32) -> Self {
            I4(self.0.map(|v| v << s))
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            I4([
                self.0[0] & o.0[0],
                self.0[1] & o.0[1],
                self.0[2] & o.0[2],
                self.0[3] & o.0[3],
            ])
        }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self {
            I4([
                self.0[0] | o.0[0],
                self.0[1] | o.0[1],
                self.0[2] | o.0[2],
                self.0[3] | o.0[3],
            ])
        }
        /// Wrapping lane-wise addition.
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            I4(core::array::from_fn(|i| self.0[i].wrapping_add(o.0[i])))
        }
        /// The lanes as f32 bit patterns.
        #[inline(always)]
        pub fn to_bits_f32(self) -> F4 {
            F4(self.0.map(f32::from_bits))
        }
        /// Lanes (below 2^31) converted to f32.
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            F4(self.0.map(|v| v as i32 as f32))
        }
    }
}

pub(crate) use imp::{F4, I4};

/// `e^x` in every lane, for `x ≤ 88` (below −87 it returns `e^−87`, about
/// 1.6e−38). Cody–Waite reduction `x = n·ln 2 + r` with `n` rounded to
/// nearest (the `1.5·2^23` trick), Cephes' degree-6 polynomial for `e^r` on
/// `|r| ≤ ln 2 / 2`, and `2^n` put into the exponent bits: within 2 ulp of
/// the true value over that range.
#[inline(always)]
pub(crate) fn exp4(x: F4) -> F4 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.max(F4::splat(-87.0));
    let t = x
        .mul(F4::splat(core::f32::consts::LOG2_E))
        .add(F4::splat(MAGIC));
    let n = t.sub(F4::splat(MAGIC));
    let r = x
        .sub(n.mul(F4::splat(0.693_359_4)))
        .sub(n.mul(F4::splat(-2.121_944_4e-4)));
    let mut p = F4::splat(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = F4::splat(c).fma(p, r);
    }
    let y = F4::splat(1.0).add(r).add(p.mul(r.mul(r)));
    // t's low mantissa bits hold n (two's complement around MAGIC's bits).
    let e = t
        .bits()
        .add(I4::splat((127u32).wrapping_sub(MAGIC.to_bits())))
        .shl(23)
        .to_bits_f32();
    y.mul(e)
}

/// Dot product of two equally long slices with four independent vector
/// accumulators (the tail runs scalar).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [F4::zero(); 4];
    let mut i = 0;
    // SAFETY: every load reads indices < n, within both slices.
    unsafe {
        while i + 16 <= n {
            for (q, a4) in acc.iter_mut().enumerate() {
                *a4 = a4.fma(F4::load(pa.add(i + 4 * q)), F4::load(pb.add(i + 4 * q)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = acc[0].fma(F4::load(pa.add(i)), F4::load(pb.add(i)));
            i += 4;
        }
    }
    let mut s = (acc[0].add(acc[1])).add(acc[2].add(acc[3])).hsum();
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

/// `y[i] += a * x[i]` over the common length.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let av = F4::splat(a);
    let mut i = 0;
    // SAFETY: indices < n, within both slices; x and y cannot alias (& vs &mut).
    unsafe {
        while i + 4 <= n {
            F4::load(py.add(i))
                .fma(av, F4::load(px.add(i)))
                .store(py.add(i));
            i += 4;
        }
    }
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

#[cfg(test)]
mod exp_tests {
    use super::{exp4, F4};

    fn exp1(x: f32) -> f32 {
        let mut t = [x; 4];
        // SAFETY: t holds 4 values.
        unsafe { exp4(F4::load(t.as_ptr())).store(t.as_mut_ptr()) };
        t[0]
    }

    #[test]
    fn exp4_within_2_ulp_of_f64() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp1(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37 * (1.0 + x.abs());
        }
        // 2 ulp of f32 is 2^-22 relative at worst.
        assert!(worst <= 2f64.powi(-22), "max relative error {worst:e}");
        assert_eq!(exp1(0.0), 1.0);
        assert_eq!(exp1(-1000.0), exp1(-87.0));
        assert!(exp1(f32::NAN).is_nan());
    }
}
