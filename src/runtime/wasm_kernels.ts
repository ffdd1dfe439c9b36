// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WASM SIMD128 backend of the runtime (Rust `gptq-core::runtime`):
 * weights live in wasm memory in their checkpoint dtype (f32/f16/bf16,
 * widened per tile inside the matmul); activations are copied in and out per
 * call.
 *
 * GPTQ linears are dequantized to f32 at load here (correct, not yet fused;
 * the fused dequant-matmul is planned).
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { toFloat32 } from "../io/dtype.ts";
import type { RawTensor } from "../io/safetensors.ts";
import { dequantizeLinear } from "../gptq/quant_linear.ts";
import { loadWasm } from "../wasm/mod.ts";
import * as glue from "../wasm/_generated/gptq_wasm.internal.js";
import type { Kernels, LinearHandle, QuantLinearSource } from "./kernels.ts";

interface WasmLinear extends LinearHandle {
  w: glue.WeightBuf | null;
}

const ACT: Record<string, string> = {
  silu: "silu",
  relu: "relu",
  gelu_new: "gelu_tanh",
  gelu: "gelu",
};

function u16(data: Uint8Array): Uint16Array {
  const a = data.byteOffset % 2 === 0 ? data : data.slice();
  return new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2);
}

function withBufs<T>(arrays: Float32Array[], f: (bufs: glue.F32Buf[]) => T): T {
  const bufs = arrays.map((a) => glue.F32Buf.from_array(a));
  try {
    return f(bufs);
  } finally {
    for (const b of bufs) b.free();
  }
}

function act(name: string): string {
  const k = ACT[name];
  if (!k) {
    throw new GptqError("UNSUPPORTED_ARCHITECTURE", `activation '${name}' is not supported`, {
      hint: `supported: ${Object.keys(ACT).join(", ")}`,
    });
  }
  return k;
}

/**
 * Creates the WASM kernels (instantiating the module once).
 *
 * @example
 * ```ts
 * import { createWasmKernels } from "./wasm_kernels.ts";
 * const k = await createWasmKernels();
 * console.log(k.name); // "wasm-simd128"
 * ```
 *
 * @returns The backend.
 */
export async function createWasmKernels(): Promise<Kernels> {
  await loadWasm();
  const dense = (
    w: glue.WeightBuf,
    N: number,
    K: number,
    bias: Float32Array | null,
  ): WasmLinear => {
    if (bias) w.set_bias(bias);
    return { N, K, bytes: w.byte_len(), w };
  };
  return {
    name: "wasm-simd128",
    linearFromDense(t: RawTensor, bias, transposed) {
      const [a, b] = t.shape as [number, number];
      const N = transposed ? b : a, K = transposed ? a : b;
      let w: glue.WeightBuf;
      if (t.dtype === "F16") {
        w = transposed
          ? glue.WeightBuf.from_f16_kn(u16(t.data), K, N, 0, N)
          : glue.WeightBuf.from_f16(u16(t.data), N, K);
      } else if (t.dtype === "BF16") {
        w = transposed
          ? glue.WeightBuf.from_bf16_kn(u16(t.data), K, N, 0, N)
          : glue.WeightBuf.from_bf16(u16(t.data), N, K);
      } else {
        const f = toFloat32(t.data, t.dtype);
        w = transposed
          ? glue.WeightBuf.from_f32_kn(f, K, N, 0, N)
          : glue.WeightBuf.from_f32(f, N, K);
      }
      return dense(w, N, K, bias);
    },
    linearFromGptq(q: QuantLinearSource) {
      const f = dequantizeLinear(q.tensors, q.format);
      return dense(
        glue.WeightBuf.from_f32(f, q.tensors.N, q.tensors.K),
        q.tensors.N,
        q.tensors.K,
        q.tensors.bias,
      );
    },
    linear(x, M, h) {
      const l = h as WasmLinear;
      if (!l.w) throw new Error("bug: linear used after release");
      const y = new glue.F32Buf(M * l.N);
      try {
        return withBufs([x], ([xb]) => {
          glue.Kernels.matmul(xb!, M, l.w!, 0, l.N, y, 0, l.N);
          return y.to_vec();
        });
      } finally {
        y.free();
      }
    },
    release(h) {
      const l = h as WasmLinear;
      l.w?.free();
      l.w = null;
    },
    rmsNorm(x, M, H, weight, eps) {
      const out = new glue.F32Buf(M * H);
      try {
        return withBufs([x, weight], ([xb, wb]) => {
          glue.Kernels.rms_norm(xb!, M, wb!, eps, out);
          return out.to_vec();
        });
      } finally {
        out.free();
      }
    },
    layerNorm(x, M, H, weight, bias, eps) {
      const out = new glue.F32Buf(M * H);
      try {
        return withBufs([x, weight, bias ?? new Float32Array(0)], ([xb, wb, bb]) => {
          glue.Kernels.layer_norm(xb!, M, wb!, bb!, eps, out);
          return out.to_vec();
        });
      } finally {
        out.free();
      }
    },
    rope(x, T, heads, headDim, rotaryDim, positions, invFreq) {
      for (let t = 1; t < T; t++) {
        if (positions[t] !== positions[0]! + t) {
          throw new Error("bug: rope positions must be contiguous");
        }
      }
      withBufs([x], ([xb]) => {
        glue.Kernels.rope(xb!, T, heads, headDim, rotaryDim, invFreq, T > 0 ? positions[0]! : 0);
        xb!.copy_to(x);
      });
    },
    attention(q, T, Hq, Hkv, D, kCache, vCache, past) {
      const out = new glue.F32Buf(T * Hq * D);
      const n = (past + T) * Hkv * D;
      try {
        return withBufs([q, kCache.subarray(0, n), vCache.subarray(0, n)], ([qb, kb, vb]) => {
          glue.Kernels.attention(qb!, T, Hq, D, kb!, vb!, Hkv, past, 1 / Math.sqrt(D), out);
          return out.to_vec();
        });
      } finally {
        out.free();
      }
    },
    activate(x, name) {
      const kind = act(name);
      withBufs([x], ([xb]) => {
        glue.Kernels.activation(xb!, x.length, kind);
        xb!.copy_to(x);
      });
    },
    gatedActivate(gate, up, name) {
      if (act(name) !== "silu") {
        const k = act(name);
        withBufs([gate], ([g]) => {
          glue.Kernels.activation(g!, gate.length, k);
          g!.copy_to(gate);
        });
        for (let i = 0; i < gate.length; i++) gate[i] = gate[i]! * up[i]!;
        return;
      }
      withBufs([gate, up], ([g, u]) => {
        glue.Kernels.silu_mul(g!, u!, gate.length);
        g!.copy_to(gate);
      });
    },
  };
}
