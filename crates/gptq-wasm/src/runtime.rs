// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! wasm-bindgen surface of the model-runtime kernels (`gptq_core::runtime`).
//!
//! Handle-based: weights ([`WeightBuf`]) and activations ([`F32Buf`]) live in
//! wasm memory, are created once from JS typed arrays, and are passed to the
//! static methods of [`Kernels`] by reference, so nothing is copied per call.
//! Buffers may be larger than a call needs (allocate for the longest
//! sequence once); every kernel takes explicit row/element counts.
//!
//! Errors are thrown as JS `Error`s whose message names the argument and the
//! sizes; the TypeScript side wraps them in `GptqError`. Passing the same
//! handle as a `&` and a `&mut` argument of one call throws (wasm-bindgen's
//! aliasing check) — use a second buffer.
//!
//! Work split between two Workers: one wasm instance per Worker; each holds
//! only the rows of every weight it computes (`WeightBuf.from_f16(bits
//! .subarray(n0 * k, n1 * k), n1 - n0, k)`, or `from_*_kn(.., n0, n1)` for
//! GPT-2 `Conv1D`, or `from_gptq(.., n0, n1, ..)` for a GPTQ layer, built in
//! Rust from the packed tensors) and its own attention heads; halves of
//! activations are exchanged with `F32Buf.read`/`write_2d`.

use gptq_core::runtime::{
    activation, attention, matmul, norm, ops, qmatmul, rope, transpose, ActQuant, KernelError,
    QMode, QWeights, QuantTensors, Weights,
};
use wasm_bindgen::prelude::*;

fn jerr(e: KernelError) -> JsError {
    JsError::new(&e.0)
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), JsError> {
    if cond {
        Ok(())
    } else {
        Err(JsError::new(&msg()))
    }
}

/// Borrows `data[..n]`, or fails naming `what`.
fn prefix<'a>(what: &str, data: &'a [f32], n: usize) -> Result<&'a [f32], JsError> {
    data.get(..n).ok_or_else(|| {
        JsError::new(&format!(
            "{what}: buffer has {} elements, the call needs {n}",
            data.len()
        ))
    })
}

/// Mutably borrows `data[..n]`, or fails naming `what`.
fn prefix_mut<'a>(what: &str, data: &'a mut [f32], n: usize) -> Result<&'a mut [f32], JsError> {
    let len = data.len();
    data.get_mut(..n).ok_or_else(|| {
        JsError::new(&format!(
            "{what}: buffer has {len} elements, the call needs {n}"
        ))
    })
}

fn mul(what: &str, a: usize, b: usize) -> Result<usize, JsError> {
    a.checked_mul(b)
        .ok_or_else(|| JsError::new(&format!("{what}: size overflows")))
}

/// An f32 buffer in wasm memory (activations, norm weights, KV caches).
#[wasm_bindgen]
pub struct F32Buf {
    data: Vec<f32>,
}

#[wasm_bindgen]
impl F32Buf {
    /// A zero-filled buffer of `len` f32 values.
    #[wasm_bindgen(constructor)]
    pub fn new(len: usize) -> F32Buf {
        F32Buf {
            data: vec![0.0; len],
        }
    }

    /// A buffer holding a copy of `data`.
    pub fn from_array(data: &[f32]) -> F32Buf {
        F32Buf {
            data: data.to_vec(),
        }
    }

    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Byte address of element 0 in the instance's memory, for a zero-copy
    /// `new Float32Array(memory.buffer, ptr, len)` view. Views are invalidated
    /// when wasm memory grows (any allocation): re-create them after.
    pub fn ptr(&self) -> usize {
        self.data.as_ptr() as usize
    }

    /// Sets every value to `v`.
    pub fn fill(&mut self, v: f32) {
        self.data.fill(v);
    }

    /// Copies `data` into the buffer at element `offset`.
    pub fn write(&mut self, offset: usize, data: &[f32]) -> Result<(), JsError> {
        let end = offset.saturating_add(data.len());
        check(end <= self.data.len(), || {
            format!(
                "F32Buf.write: {}..{end} is outside the buffer of {}",
                offset,
                self.data.len()
            )
        })?;
        self.data[offset..end].copy_from_slice(data);
        Ok(())
    }

    /// A copy of `len` values starting at `offset` (a new `Float32Array`).
    pub fn read(&self, offset: usize, len: usize) -> Result<Vec<f32>, JsError> {
        let end = offset.saturating_add(len);
        check(end <= self.data.len(), || {
            format!(
                "F32Buf.read: {offset}..{end} is outside the buffer of {}",
                self.data.len()
            )
        })?;
        Ok(self.data[offset..end].to_vec())
    }

    /// Copies the first `out.length` values into `out`.
    pub fn copy_to(&self, out: &mut [f32]) -> Result<(), JsError> {
        let src = prefix("F32Buf.copy_to", &self.data, out.len())?;
        out.copy_from_slice(src);
        Ok(())
    }

    /// The whole buffer as a new `Float32Array`.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data.clone()
    }

    /// Block copy from another buffer: `this[dst_off + r*dst_stride + c] =
    /// src[src_off + r*src_stride + c]` for `r < rows`, `c < cols` (split
    /// fused QKV, store new K/V rows into a cache, gather heads).
    #[allow(clippy::too_many_arguments)]
    pub fn copy_from(
        &mut self,
        src: &F32Buf,
        src_off: usize,
        src_stride: usize,
        dst_off: usize,
        dst_stride: usize,
        rows: usize,
        cols: usize,
    ) -> Result<(), JsError> {
        ops::copy_2d(
            &src.data,
            src_off,
            src_stride,
            &mut self.data,
            dst_off,
            dst_stride,
            rows,
            cols,
        )
        .map_err(jerr)
    }

    /// The same block copy from a JS array (exchanging Worker halves).
    #[allow(clippy::too_many_arguments)]
    pub fn write_2d(
        &mut self,
        src: &[f32],
        src_off: usize,
        src_stride: usize,
        dst_off: usize,
        dst_stride: usize,
        rows: usize,
        cols: usize,
    ) -> Result<(), JsError> {
        ops::copy_2d(
            src,
            src_off,
            src_stride,
            &mut self.data,
            dst_off,
            dst_stride,
            rows,
            cols,
        )
        .map_err(jerr)
    }
}

enum Store {
    F32(Vec<f32>),
    F16(Vec<u16>),
    Bf16(Vec<u16>),
    /// A GPTQ layer in the fused kernel's layout (boxed: it is large).
    Gptq(Box<QWeights>),
}

/// A weight matrix `[n, k]` (rows = output features, like `nn.Linear`) kept
/// in its storage dtype (f32, or f16/bf16 bit patterns, or GPTQ-packed
/// 2/3/4/8-bit codes, see `from_gptq`), with an optional bias `[n]`. Also
/// used for embedding tables (`[vocab, d]`, not GPTQ).
#[wasm_bindgen]
pub struct WeightBuf {
    store: Store,
    n: usize,
    k: usize,
    bias: Option<Vec<f32>>,
}

impl WeightBuf {
    /// The dense weights, or an error naming `what` for a GPTQ layer.
    fn weights(&self, what: &str) -> Result<Weights<'_>, JsError> {
        match &self.store {
            Store::F32(w) => Ok(Weights::F32(w)),
            Store::F16(w) => Ok(Weights::F16(w)),
            Store::Bf16(w) => Ok(Weights::Bf16(w)),
            Store::Gptq(_) => Err(JsError::new(&format!(
                "{what}: a GPTQ-packed weight cannot be used here (only Kernels.matmul takes one)"
            ))),
        }
    }

    fn checked(
        store: Store,
        len: usize,
        n: usize,
        k: usize,
        what: &str,
    ) -> Result<WeightBuf, JsError> {
        check(Some(len) == n.checked_mul(k), || {
            format!("WeightBuf.{what}: {len} elements given for shape [{n}, {k}]")
        })?;
        Ok(WeightBuf {
            store,
            n,
            k,
            bias: None,
        })
    }
}

#[wasm_bindgen]
impl WeightBuf {
    /// `[n, k]` f32 weight (copied once into wasm memory).
    pub fn from_f32(data: &[f32], n: usize, k: usize) -> Result<WeightBuf, JsError> {
        Self::checked(Store::F32(data.to_vec()), data.len(), n, k, "from_f32")
    }

    /// `[n, k]` f16 weight given as bit patterns (`Uint16Array`).
    pub fn from_f16(bits: &[u16], n: usize, k: usize) -> Result<WeightBuf, JsError> {
        Self::checked(Store::F16(bits.to_vec()), bits.len(), n, k, "from_f16")
    }

    /// `[n, k]` bf16 weight given as bit patterns (`Uint16Array`).
    pub fn from_bf16(bits: &[u16], n: usize, k: usize) -> Result<WeightBuf, JsError> {
        Self::checked(Store::Bf16(bits.to_vec()), bits.len(), n, k, "from_bf16")
    }

    /// GPT-2 `Conv1D` f32 weight stored `[k, n]`: transposed once to
    /// `[n1 - n0, k]`, keeping output rows `n0..n1`.
    pub fn from_f32_kn(
        data: &[f32],
        k: usize,
        n: usize,
        n0: usize,
        n1: usize,
    ) -> Result<WeightBuf, JsError> {
        let t = transpose(data, k, n, n0, n1).map_err(jerr)?;
        let len = t.len();
        Self::checked(Store::F32(t), len, n1 - n0, k, "from_f32_kn")
    }

    /// GPT-2 `Conv1D` f16 weight stored `[k, n]` (bits), see `from_f32_kn`.
    pub fn from_f16_kn(
        bits: &[u16],
        k: usize,
        n: usize,
        n0: usize,
        n1: usize,
    ) -> Result<WeightBuf, JsError> {
        let t = transpose(bits, k, n, n0, n1).map_err(jerr)?;
        let len = t.len();
        Self::checked(Store::F16(t), len, n1 - n0, k, "from_f16_kn")
    }

    /// GPT-2 `Conv1D` bf16 weight stored `[k, n]` (bits), see `from_f32_kn`.
    pub fn from_bf16_kn(
        bits: &[u16],
        k: usize,
        n: usize,
        n0: usize,
        n1: usize,
    ) -> Result<WeightBuf, JsError> {
        let t = transpose(bits, k, n, n0, n1).map_err(jerr)?;
        let len = t.len();
        Self::checked(Store::Bf16(t), len, n1 - n0, k, "from_bf16_kn")
    }

    /// Output columns `n0..n1` of a GPTQ linear (`k` inputs, `n` outputs) in
    /// the fused dequant-matmul layout: `qweight [k·bits/32, n]`, `qzeros
    /// [G, n·bits/32]`, `scales [G, n]` (f16 bits), `g_idx [k]` (empty: none,
    /// then `g = k / G`), `v2` for the "gptq_v2" zero format (else v1, stored
    /// `zero − 1`). `mode`: 0 auto, 1 reorder rows by group (ExLlama), 2
    /// gather scale/zero per row. `act`: 0 f32 activations (exact), 1 int8
    /// activations per 32 values with integer dot products (llama.cpp's Q8_0
    /// route; always reorders). The result has `n1 - n0` rows.
    #[allow(clippy::too_many_arguments)]
    pub fn from_gptq(
        qweight: &[i32],
        qzeros: &[i32],
        scales: &[u16],
        g_idx: &[i32],
        k: usize,
        n: usize,
        bits: u32,
        v2: bool,
        n0: usize,
        n1: usize,
        mode: u32,
        act: u32,
    ) -> Result<WeightBuf, JsError> {
        let act = ActQuant::from_code(act).ok_or_else(|| {
            JsError::new(&format!(
                "WeightBuf.from_gptq: act {act} is not 0 (f32) or 1 (int8)"
            ))
        })?;
        let mode = QMode::from_code(mode).ok_or_else(|| {
            JsError::new(&format!(
                "WeightBuf.from_gptq: mode {mode} is not 0 (auto), 1 (reorder) or 2 (gather)"
            ))
        })?;
        let t = QuantTensors {
            qweight,
            qzeros,
            scales,
            g_idx: if g_idx.is_empty() { None } else { Some(g_idx) },
            k,
            n,
            bits,
            v2,
        };
        let q = QWeights::with_act(&t, n0, n1, mode, act).map_err(jerr)?;
        Ok(WeightBuf {
            store: Store::Gptq(Box::new(q)),
            n: n1 - n0,
            k,
            bias: None,
        })
    }

    /// `"reorder"` or `"gather"` for a GPTQ weight (how act-order is
    /// handled), `""` otherwise.
    pub fn gptq_mode(&self) -> String {
        match &self.store {
            Store::Gptq(q) => match q.mode() {
                QMode::Gather => "gather",
                _ => "reorder",
            },
            _ => "",
        }
        .to_string()
    }

    /// Attaches a bias of `n` values (f32), added by `Kernels.matmul`.
    pub fn set_bias(&mut self, bias: &[f32]) -> Result<(), JsError> {
        check(bias.len() == self.n, || {
            format!(
                "WeightBuf.set_bias: {} values given for {} rows",
                bias.len(),
                self.n
            )
        })?;
        self.bias = Some(bias.to_vec());
        Ok(())
    }

    /// Rows `n` (output features).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns `k` (input features).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Storage dtype: `"f32"`, `"f16"`, `"bf16"` or `"gptq2"`..`"gptq8"`.
    pub fn dtype(&self) -> String {
        match &self.store {
            Store::F32(_) => "f32".to_string(),
            Store::F16(_) => "f16".to_string(),
            Store::Bf16(_) => "bf16".to_string(),
            Store::Gptq(q) => format!("gptq{}", q.bits()),
        }
    }

    /// Bytes held in wasm memory (weights and bias).
    pub fn byte_len(&self) -> usize {
        let w = match &self.store {
            Store::F32(w) => w.len() * 4,
            Store::F16(w) | Store::Bf16(w) => w.len() * 2,
            Store::Gptq(q) => q.byte_len(),
        };
        w + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }
}

/// The kernels, as static methods taking buffer handles.
#[wasm_bindgen]
pub struct Kernels;

#[wasm_bindgen]
impl Kernels {
    /// `y[y_off + i*ldy + (j - n0)] = Σ x[i*k + ·]·W[j*k + ·] (+ bias[j])` for
    /// `i < m`, `j ∈ [n0, n1)`, `k = w.cols()`. Compact output: `y_off = 0,
    /// ldy = n1 - n0`; in place in a full `[m, N]` output: `y_off = n0, ldy = N`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        x: &F32Buf,
        m: usize,
        w: &WeightBuf,
        n0: usize,
        n1: usize,
        y: &mut F32Buf,
        y_off: usize,
        ldy: usize,
    ) -> Result<(), JsError> {
        check(n1 <= w.n, || {
            format!("matmul: rows {n0}..{n1} exceed the weight's {} rows", w.n)
        })?;
        if let Store::Gptq(q) = &w.store {
            return qmatmul(
                &x.data,
                m,
                w.k,
                q,
                w.bias.as_deref(),
                n0,
                n1,
                &mut y.data,
                y_off,
                ldy,
            )
            .map_err(jerr);
        }
        matmul(
            &x.data,
            m,
            w.k,
            w.weights("matmul")?,
            w.bias.as_deref(),
            n0,
            n1,
            &mut y.data,
            y_off,
            ldy,
        )
        .map_err(jerr)
    }

    /// Embedding lookup: `out[t] = table[ids[t]]` (rows of `table.cols()`).
    pub fn embed(table: &WeightBuf, ids: &[u32], out: &mut F32Buf) -> Result<(), JsError> {
        ops::embed(
            table.weights("embed")?,
            table.n,
            table.k,
            ids,
            &mut out.data,
        )
        .map_err(jerr)
    }

    /// RMSNorm of `rows` rows of `d = weight.len()`: `out = x / rms · weight`.
    pub fn rms_norm(
        x: &F32Buf,
        rows: usize,
        weight: &F32Buf,
        eps: f32,
        out: &mut F32Buf,
    ) -> Result<(), JsError> {
        let n = mul("rms_norm", rows, weight.data.len())?;
        let xs = prefix("rms_norm x", &x.data, n)?;
        let os = prefix_mut("rms_norm out", &mut out.data, n)?;
        norm::rms_norm(xs, &weight.data, eps, os).map_err(jerr)
    }

    /// LayerNorm of `rows` rows of `d = weight.len()`; `bias` may be empty.
    pub fn layer_norm(
        x: &F32Buf,
        rows: usize,
        weight: &F32Buf,
        bias: &F32Buf,
        eps: f32,
        out: &mut F32Buf,
    ) -> Result<(), JsError> {
        let n = mul("layer_norm", rows, weight.data.len())?;
        let xs = prefix("layer_norm x", &x.data, n)?;
        let os = prefix_mut("layer_norm out", &mut out.data, n)?;
        norm::layer_norm(xs, &weight.data, &bias.data, eps, os).map_err(jerr)
    }

    /// Residual add of the first `len` values: `dst += src`.
    pub fn add(dst: &mut F32Buf, src: &F32Buf, len: usize) -> Result<(), JsError> {
        let s = prefix("add src", &src.data, len)?;
        activation::add(prefix_mut("add dst", &mut dst.data, len)?, s).map_err(jerr)
    }

    /// SwiGLU on the first `len` values: `gate = silu(gate) · up`.
    pub fn silu_mul(gate: &mut F32Buf, up: &F32Buf, len: usize) -> Result<(), JsError> {
        let u = prefix("silu_mul up", &up.data, len)?;
        activation::silu_mul(prefix_mut("silu_mul gate", &mut gate.data, len)?, u).map_err(jerr)
    }

    /// In-place activation of the first `len` values. `kind`: `"relu"`,
    /// `"silu"`, `"gelu_tanh"` (HF `gelu_new`/`gelu_pytorch_tanh`) or
    /// `"gelu"` (exact erf form).
    pub fn activation(x: &mut F32Buf, len: usize, kind: &str) -> Result<(), JsError> {
        let xs = prefix_mut("activation x", &mut x.data, len)?;
        match kind {
            "relu" => activation::relu(xs),
            "silu" => activation::silu(xs),
            "gelu_tanh" => activation::gelu_tanh(xs),
            "gelu" => activation::gelu_erf(xs),
            _ => {
                return Err(JsError::new(&format!(
                    "activation: unknown kind {kind:?} (expected relu, silu, gelu_tanh or gelu)"
                )))
            }
        }
        Ok(())
    }

    /// Stable softmax in place over `rows` rows of `n` values.
    pub fn softmax(x: &mut F32Buf, rows: usize, n: usize) -> Result<(), JsError> {
        let len = mul("softmax", rows, n)?;
        activation::softmax(prefix_mut("softmax x", &mut x.data, len)?, n).map_err(jerr)
    }

    /// RoPE (HF `rotate_half`) in place on `x [t, heads, head_dim]`: the first
    /// `rotary_dim` dims of each head, positions `pos0..pos0 + t`,
    /// `inv_freq [rotary_dim / 2]` precomputed (with any rope scaling).
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        x: &mut F32Buf,
        t: usize,
        heads: usize,
        head_dim: usize,
        rotary_dim: usize,
        inv_freq: &[f32],
        pos0: usize,
    ) -> Result<(), JsError> {
        rope::rope(&mut x.data, t, heads, head_dim, rotary_dim, inv_freq, pos0).map_err(jerr)
    }

    /// Causal attention: `q [t, hq, d]` at positions `past..past + t` over
    /// caches `[≥ past + t, hkv, d]` already holding those positions;
    /// writes `out [t, hq, d]`. `scale` is usually `1 / sqrt(d)`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        q: &F32Buf,
        t: usize,
        hq: usize,
        d: usize,
        k_cache: &F32Buf,
        v_cache: &F32Buf,
        hkv: usize,
        past: usize,
        scale: f32,
        out: &mut F32Buf,
    ) -> Result<(), JsError> {
        attention::attention(
            &q.data,
            t,
            hq,
            d,
            &k_cache.data,
            &v_cache.data,
            hkv,
            past,
            scale,
            &mut out.data,
        )
        .map_err(jerr)
    }
}
