// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! wasm-bindgen surface of gptq-core.
//!
//! Every function takes typed-array slices and returns a new typed array (or
//! writes into a caller's slice). Invalid input comes back as a thrown JS
//! `Error` whose message says what is wrong; the TypeScript loader in
//! `src/wasm/mod.ts` turns it into a `GptqError`.

mod runtime;
mod solver;

use gptq_core::{dtype, pack};
use wasm_bindgen::prelude::*;

fn js_err(e: impl core::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// f16 bit patterns → f32 values.
#[wasm_bindgen]
pub fn f16_to_f32(src: &[u16]) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    let _ = dtype::f16_slice_to_f32(src, &mut out);
    out
}

/// bf16 bit patterns → f32 values.
#[wasm_bindgen]
pub fn bf16_to_f32(src: &[u16]) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    let _ = dtype::bf16_slice_to_f32(src, &mut out);
    out
}

/// f32 values → f16 bit patterns (round to nearest even).
#[wasm_bindgen]
pub fn f32_to_f16(src: &[f32]) -> Vec<u16> {
    let mut out = vec![0u16; src.len()];
    let _ = dtype::f32_slice_to_f16(src, &mut out);
    out
}

/// f32 values → bf16 bit patterns (round to nearest even).
#[wasm_bindgen]
pub fn f32_to_bf16(src: &[f32]) -> Vec<u16> {
    let mut out = vec![0u16; src.len()];
    let _ = dtype::f32_slice_to_bf16(src, &mut out);
    out
}

/// Packs codes `[k, n]` along K into `qweight [k*bits/32, n]`.
#[wasm_bindgen]
pub fn pack_rows(codes: &[u32], k: usize, n: usize, bits: u32) -> Result<Vec<i32>, JsError> {
    pack::pack_rows(codes, k, n, bits).map_err(js_err)
}

/// Unpacks `qweight [k*bits/32, n]` into codes `[k, n]`.
#[wasm_bindgen]
pub fn unpack_rows(qweight: &[i32], k: usize, n: usize, bits: u32) -> Result<Vec<u32>, JsError> {
    pack::unpack_rows(qweight, k, n, bits).map_err(js_err)
}

/// Packs codes `[g, n]` along N into `qzeros [g, n*bits/32]`.
#[wasm_bindgen]
pub fn pack_cols(codes: &[u32], g: usize, n: usize, bits: u32) -> Result<Vec<i32>, JsError> {
    pack::pack_cols(codes, g, n, bits).map_err(js_err)
}

/// Unpacks `qzeros [g, n*bits/32]` into codes `[g, n]`.
#[wasm_bindgen]
pub fn unpack_cols(packed: &[i32], g: usize, n: usize, bits: u32) -> Result<Vec<u32>, JsError> {
    pack::unpack_cols(packed, g, n, bits).map_err(js_err)
}

/// Runs `iters` rounds of independent f32x4 multiply-add chains (see
/// `gptq_core::runtime::peak`) and returns a checksum; a bench times it.
#[wasm_bindgen]
pub fn fma_peak(iters: u32, a: f32, b: f32) -> f32 {
    gptq_core::runtime::peak::fma_peak(iters, a, b)
}

/// Flops of one [`fma_peak`] round.
#[wasm_bindgen]
pub fn fma_peak_flops_per_iter() -> u32 {
    (gptq_core::runtime::peak::FMA_PEAK_CHAINS * 8) as u32
}

/// Which SIMD instruction set this module was built for: `"relaxed-simd"`
/// (fused `f32x4.relaxed_madd`) or `"simd128"`.
#[wasm_bindgen]
pub fn simd_variant() -> String {
    if cfg!(target_feature = "relaxed-simd") {
        "relaxed-simd".into()
    } else {
        "simd128".into()
    }
}
