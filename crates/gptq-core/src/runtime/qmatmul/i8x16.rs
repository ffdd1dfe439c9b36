// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Sixteen-byte integer vectors for the int8-activation GPTQ kernel
//! ([`super::int8`]): `B16` holds 16 bytes (activation `i8`s or weight code
//! bytes), `D4` four `i32` dot-product accumulators.
//!
//! [`dot`] adds, per `i32` lane `c`, `Σ_{i<4} x[4c+i] · w[4c+i]` with `x`
//! signed (4 bytes repeated in every lane) and `w` in `0..=127`: one
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` (VNNI's `vpdpbusd` on x86) with
//! `+relaxed-simd`, else SIMD128 `i16` widening and two `i32x4.dot_i16x8_s`
//! into paired partial sums, added up once per block ([`D4::to_f32`]). Both are exact integer sums, so the
//! two builds give bit-identical results. Other targets (native tests) use
//! lane-wise loops.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use super::super::super::simd::F4;
    use core::arch::wasm32::*;

    /// Sixteen bytes.
    #[derive(Clone, Copy)]
    pub struct B16(v128);
    /// Four `i32` lanes.
    #[cfg(target_feature = "relaxed-simd")]
    #[derive(Clone, Copy)]
    pub struct D4(v128);
    /// Four `i32` sums, each kept as two partial lanes until [`D4::to_f32`]:
    /// `[c0, c0, c1, c1]` and `[c2, c2, c3, c3]` (no shuffle per dot).
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[derive(Clone, Copy)]
    pub struct D4(v128, v128);

    impl B16 {
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            B16(v128_load(p as *const v128))
        }
        /// The four bytes at `p` repeated in every `i32` lane.
        ///
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn splat4(p: *const i8) -> Self {
            B16(v128_load32_splat(p as *const u32))
        }
        /// Bits `S..S + W` of every byte, at bit 0 (`S + W ≤ 8`).
        #[inline(always)]
        pub fn field<const S: u32, const W: u32>(self) -> Self {
            let m = u8x16_splat(((1u32 << W) - 1) as u8);
            let v = if S == 0 { self.0 } else { u16x8_shr(self.0, S) };
            B16(if S == 0 && W == 8 { v } else { v128_and(v, m) })
        }
        /// Every byte's top bit moved to bit 6 (`0` or `64`), the rest cleared.
        #[inline(always)]
        pub fn top_as_64(self) -> Self {
            B16(v128_and(u16x8_shr(self.0, 1), u8x16_splat(0x40)))
        }
    }

    impl D4 {
        #[cfg(target_feature = "relaxed-simd")]
        #[inline(always)]
        pub fn zero() -> Self {
            D4(i32x4_splat(0))
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        #[inline(always)]
        pub fn zero() -> Self {
            D4(i32x4_splat(0), i32x4_splat(0))
        }
        #[cfg(target_feature = "relaxed-simd")]
        #[inline(always)]
        fn lanes(self) -> v128 {
            self.0
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        #[inline(always)]
        fn lanes(self) -> v128 {
            i32x4_add(
                i32x4_shuffle::<0, 2, 4, 6>(self.0, self.1),
                i32x4_shuffle::<1, 3, 5, 7>(self.0, self.1),
            )
        }
        /// The lanes as f32 (exact below 2^24).
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            let mut t = [0f32; 4];
            // SAFETY: t holds 4 f32.
            unsafe {
                v128_store(
                    t.as_mut_ptr() as *mut v128,
                    f32x4_convert_i32x4(self.lanes()),
                );
                F4::load(t.as_ptr())
            }
        }
    }

    /// `acc[c] + Σ_{i<4} x[4c+i]·w[4c+i]` (`w` bytes in `0..=127`).
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    pub fn dot(acc: D4, x: B16, w: B16) -> D4 {
        D4(i32x4_relaxed_dot_i8x16_i7x16_add(x.0, w.0, acc.0))
    }

    /// `acc[c] + Σ_{i<4} x[4c+i]·w[4c+i]` (`w` bytes in `0..=127`; `x` the
    /// same 4 bytes in every lane, as [`B16::splat4`] gives, so its low half
    /// serves both halves of `w`).
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    pub fn dot(acc: D4, x: B16, w: B16) -> D4 {
        let xw = i16x8_extend_low_i8x16(x.0);
        let pl = i32x4_dot_i16x8(xw, u16x8_extend_low_u8x16(w.0));
        let ph = i32x4_dot_i16x8(xw, u16x8_extend_high_u8x16(w.0));
        D4(i32x4_add(acc.0, pl), i32x4_add(acc.1, ph))
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    use super::super::super::simd::F4;

    /// Sixteen bytes.
    #[derive(Clone, Copy)]
    pub struct B16([u8; 16]);
    /// Four `i32` lanes.
    #[derive(Clone, Copy)]
    pub struct D4([i32; 4]);

    impl B16 {
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            B16(core::ptr::read_unaligned(p as *const [u8; 16]))
        }
        /// The four bytes at `p` repeated in every `i32` lane.
        ///
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn splat4(p: *const i8) -> Self {
            let q = core::ptr::read_unaligned(p as *const [u8; 4]);
            B16(core::array::from_fn(|i| q[i % 4]))
        }
        /// Bits `S..S + W` of every byte, at bit 0 (`S + W ≤ 8`).
        #[inline(always)]
        pub fn field<const S: u32, const W: u32>(self) -> Self {
            B16(self.0.map(|b| ((b as u32 >> S) & ((1 << W) - 1)) as u8))
        }
        /// Every byte's top bit moved to bit 6 (`0` or `64`), the rest cleared.
        #[inline(always)]
        pub fn top_as_64(self) -> Self {
            B16(self.0.map(|b| (b >> 1) & 0x40))
        }
    }

    impl D4 {
        #[inline(always)]
        pub fn zero() -> Self {
            D4([0; 4])
        }
        /// The lanes as f32 (exact below 2^24).
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            let t = self.0.map(|v| v as f32);
            // SAFETY: t holds 4 f32.
            unsafe { F4::load(t.as_ptr()) }
        }
    }

    /// `acc[c] + Σ_{i<4} x[4c+i]·w[4c+i]` (`w` bytes in `0..=127`).
    #[inline(always)]
    pub fn dot(acc: D4, x: B16, w: B16) -> D4 {
        D4(core::array::from_fn(|c| {
            (0..4).fold(acc.0[c], |s, i| {
                s + (x.0[4 * c + i] as i8 as i32) * (w.0[4 * c + i] as i32)
            })
        }))
    }
}

pub(super) use imp::{dot, B16, D4};
