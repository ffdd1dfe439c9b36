// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The plain TypeScript backend: correct and slow. It is the reference the
 * other backends are tested against, and the fallback when nothing else
 * loads (the runtime always says which backend it chose).
 *
 * @module
 */

import { toFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import { dequantizeLinear } from "../../gptq/quant_linear.ts";
import { GptqError } from "../../errors.ts";
import type { LinearHandle, QuantLinearSource } from "../backend.ts";
import type { Kernels } from "../host_kernels.ts";
import {
  REF_ACTIVATIONS,
  refAttention,
  refLayerNorm,
  refLinear,
  refRmsNorm,
  refRope,
} from "./ref_kernels.ts";

interface DenseF32 extends LinearHandle {
  w: Float32Array;
  bias: Float32Array | null;
}

/** Typed arrays {@linkcode transpose} works on. */
export type Matrix = Float32Array | Uint8Array | Uint32Array | Int32Array;

/**
 * Transposes a row-major `[R, C]` matrix into a new array of the same type.
 *
 * @example
 * ```ts
 * import { transpose } from "./ts_kernels.ts";
 * console.log(transpose(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3)); // [1, 4, 2, 5, 3, 6]
 * ```
 *
 * @param a The matrix.
 * @param R Rows.
 * @param C Columns.
 * @returns `[C, R]`.
 */
export function transpose<T extends Matrix>(a: T, R: number, C: number): T {
  const out = new (a.constructor as new (n: number) => T)(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = a[r * C + c]!;
  return out;
}

function activation(act: string): (x: number) => number {
  const f = REF_ACTIVATIONS[act];
  if (!f) {
    throw new GptqError("UNSUPPORTED_ARCHITECTURE", `activation '${act}' is not supported`, {
      hint: `supported: ${Object.keys(REF_ACTIVATIONS).join(", ")}`,
    });
  }
  return f;
}

/**
 * Makes the TypeScript reference backend.
 *
 * @example
 * ```ts
 * import { createTsKernels } from "./ts_kernels.ts";
 * const k = createTsKernels();
 * console.log(k.name); // "typescript"
 * ```
 *
 * @returns The backend.
 */
export function createTsKernels(): Kernels {
  return {
    name: "typescript",
    linearFromDense(w: RawTensor, bias, transposed): LinearHandle {
      const [a, b] = w.shape as [number, number];
      let f = toFloat32(w.data, w.dtype);
      if (transposed) f = transpose(f, a, b);
      const N = transposed ? b : a, K = transposed ? a : b;
      const h: DenseF32 = { N, K, bytes: f.byteLength, w: f, bias };
      return h;
    },
    linearFromGptq(q: QuantLinearSource): LinearHandle {
      const w = dequantizeLinear(q.tensors, q.format);
      const h: DenseF32 = {
        N: q.tensors.N,
        K: q.tensors.K,
        bytes: w.byteLength,
        w,
        bias: q.tensors.bias,
      };
      return h;
    },
    linear(x, M, handle) {
      const h = handle as DenseF32;
      return refLinear(x, M, h.K, h.w, h.N, h.bias);
    },
    release(handle) {
      (handle as DenseF32).w = new Float32Array(0);
    },
    rmsNorm: refRmsNorm,
    layerNorm: refLayerNorm,
    rope: refRope,
    attention: refAttention,
    activate(x, act) {
      const f = activation(act);
      for (let i = 0; i < x.length; i++) x[i] = f(x[i]!);
    },
    gatedActivate(gate, up, act) {
      const f = activation(act);
      for (let i = 0; i < gate.length; i++) gate[i] = f(gate[i]!) * up[i]!;
    },
  };
}
