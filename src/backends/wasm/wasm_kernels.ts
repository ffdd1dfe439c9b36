// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WASM SIMD128 backend of the runtime (Rust `gptq-core::runtime`):
 * weights live in wasm memory in their checkpoint dtype (f32/f16/bf16,
 * widened per tile inside the matmul); activations are copied in and out per
 * call.
 *
 * GPTQ linears stay packed (2/3/4/8 bits, f16 scales): the fused
 * dequant-matmul (`runtime::qmatmul`) unpacks codes in registers for decode
 * and dequantizes one cache tile at a time for prefill. Act-order `g_idx` is
 * handled by reordering input rows by group at load (default) or by looking
 * scales up per row ({@linkcode WasmKernelsOptions.actOrder}).
 *
 * With `threads: 2` (the default on machines with two or more cores) a large
 * linear (N·K ≥ 65536) is split by output rows (GPTQ: at a multiple of 32):
 * this thread keeps the first half, one helper Worker (`_sync_pool.ts`) the
 * second, and each call runs
 * both halves at once, synchronously. Row splits are exact, so the output is
 * bit-identical to one thread. The Worker starts with the first split linear
 * and stops when the last one is released (or on `dispose()`).
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import { toFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import { loadWasm, wasmModule } from "../../wasm/mod.ts";
import * as glue from "../../wasm/_generated/gptq_wasm.internal.js";
import type { LinearHandle, QuantLinearSource } from "../backend.ts";
import type { Kernels } from "../host_kernels.ts";
import { splitRows } from "./_matmul_pool.ts";
import {
  type GptqHalf,
  halfBytes,
  type HalfWeight,
  helperUnavailable,
  sliceGptqHalf,
  sliceHalf,
  SyncWorker,
} from "./_sync_pool.ts";

interface WasmLinear extends LinearHandle {
  w: glue.WeightBuf | null;
  /** Rows this thread computes (all of N unless split). */
  nh: number;
  /** The helper holding rows nh..N, and its handle there. */
  helper: SyncWorker | null;
  handle: number;
}

/** Options of {@linkcode createWasmKernels}. */
export interface WasmKernelsOptions {
  /**
   * Threads for large linears: 1, or 2 (this thread plus one helper Worker;
   * larger values are treated as 2). Default: 2 when
   * `navigator.hardwareConcurrency ≥ 2` and the Worker may be loaded, else 1.
   */
  threads?: number;
  /** Smallest `N·K` split across the threads (default 65536). */
  minSplit?: number;
  /**
   * How GPTQ act-order `g_idx` is handled: `"reorder"` sorts input rows by
   * group at load and gathers `x` per call (ExLlama's way), `"gather"` looks
   * scale and zero up per input row; `"auto"` (default) reorders unless
   * padding groups to 32 rows would add more than 25% to K.
   */
  actOrder?: "auto" | "reorder" | "gather";
}

const ACT_ORDER = { auto: 0, reorder: 1, gather: 2 } as const;

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

/** Runs `f` on wasm copies of `inputs` and a fresh `outLen` output buffer; returns the output. */
function compute(
  inputs: Float32Array[],
  outLen: number,
  f: (bufs: glue.F32Buf[], out: glue.F32Buf) => void,
): Float32Array {
  const out = new glue.F32Buf(outLen);
  try {
    return withBufs(inputs, (bufs) => {
      f(bufs, out);
      return out.to_vec();
    });
  } finally {
    out.free();
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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
 * const k = await createWasmKernels({ threads: 1 });
 * console.log(k.name); // "wasm-simd128"
 * k.dispose?.();
 * ```
 *
 * @param opts Thread count and split threshold.
 * @returns The backend; call `dispose()` (or release every linear) when done,
 * since a running helper Worker keeps the process alive.
 */
export async function createWasmKernels(opts: WasmKernelsOptions = {}): Promise<Kernels> {
  await loadWasm();
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  const requested = opts.threads ?? (cores >= 2 ? 2 : 1);
  if (!Number.isInteger(requested) || requested < 1) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `threads must be a positive integer, got ${requested}`,
      {
        hint: "pass threads: 1 or 2",
      },
    );
  }
  const minSplit = opts.minSplit ?? 1 << 16;
  const actOrder = ACT_ORDER[opts.actOrder ?? "auto"];
  if (actOrder === undefined) {
    throw new GptqError("INVALID_ARGUMENT", `actOrder must be auto, reorder or gather`, {
      hint: `got ${JSON.stringify(opts.actOrder)}`,
    });
  }
  // Without permission to load the Worker, quietly stay on one thread unless
  // two were asked for explicitly.
  let noHelper: string | null = requested < 2 ? "1 thread requested" : helperUnavailable();
  if (noHelper && opts.threads !== undefined && opts.threads >= 2) {
    throw new GptqError("WASM", `cannot use ${opts.threads} threads: ${noHelper}`, {
      hint: "grant --allow-read (or -A), or pass threads: 1",
    });
  }
  const module = noHelper ? null : await wasmModule();
  let helper: SyncWorker | null = null;
  /** The running helper, started on first use; null when splitting is off. */
  const getHelper = (): SyncWorker | null => {
    if (helper && !helper.closed) return helper;
    if (noHelper || !module) return null;
    try {
      helper = SyncWorker.start(module);
    } catch (e) {
      noHelper = e instanceof Error ? e.message : String(e);
      return null;
    }
    return helper;
  };
  /**
   * Builds this thread's part (rows 0..nh) and hands rows nh..N to the
   * helper; `align` > 0 puts the split at a multiple of `align` rows.
   */
  const build = (
    N: number,
    K: number,
    bias: Float32Array | null,
    mine: (nh: number) => glue.WeightBuf,
    theirs: (nh: number) => HalfWeight | GptqHalf,
    align = 0,
  ): WasmLinear => {
    const split = align > 0 ? Math.round(N / 2 / align) * align : splitRows(N, 2)[1]!;
    const nh = N * K >= minSplit && !noHelper ? split : N;
    const sw = nh > 0 && nh < N ? getHelper() : null;
    const rows = sw ? nh : N;
    const w = mine(rows);
    if (bias) w.set_bias(rows === N ? bias : bias.subarray(0, rows));
    let handle = 0, bytes = w.byte_len();
    if (sw) {
      try {
        const half = theirs(rows);
        bytes += halfBytes(half);
        handle = sw.load(half);
      } catch (e) {
        w.free();
        throw e;
      }
    }
    return { N, K, bytes, w, nh: rows, helper: sw, handle };
  };
  const closeHelper = (): void => {
    helper?.close();
    helper = null;
  };
  return {
    get name(): string {
      return noHelper ? "wasm-simd128" : "wasm-simd128 ×2 threads";
    },
    linearFromDense(t: RawTensor, bias, transposed) {
      const [a, b] = t.shape as [number, number];
      const N = transposed ? b : a, K = transposed ? a : b;
      const mine = (rows: number): glue.WeightBuf => {
        if (t.dtype === "F16" || t.dtype === "BF16") {
          const bits = u16(t.data);
          if (t.dtype === "F16") {
            return transposed
              ? glue.WeightBuf.from_f16_kn(bits, K, N, 0, rows)
              : glue.WeightBuf.from_f16(rows === N ? bits : bits.subarray(0, rows * K), rows, K);
          }
          return transposed
            ? glue.WeightBuf.from_bf16_kn(bits, K, N, 0, rows)
            : glue.WeightBuf.from_bf16(rows === N ? bits : bits.subarray(0, rows * K), rows, K);
        }
        const f = toFloat32(t.data, t.dtype);
        return transposed
          ? glue.WeightBuf.from_f32_kn(f, K, N, 0, rows)
          : glue.WeightBuf.from_f32(rows === N ? f : f.subarray(0, rows * K), rows, K);
      };
      return build(N, K, bias, mine, (nh) => sliceHalf(t, bias, transposed, nh, N));
    },
    linearFromGptq(q: QuantLinearSource) {
      const t = q.tensors;
      const { N, K, bias } = t;
      const v2 = q.format === "gptq_v2";
      const gIdx = t.gIdx ?? new Int32Array(0);
      const mine = (rows: number): glue.WeightBuf => {
        try {
          return glue.WeightBuf.from_gptq(
            t.qweight,
            t.qzeros,
            t.scales,
            gIdx,
            K,
            N,
            t.bits,
            v2,
            0,
            rows,
            actOrder,
          );
        } catch (e) {
          throw new GptqError("GPTQ_FORMAT", `cannot load the quantized linear: ${errText(e)}`, {
            hint: "the qweight/qzeros/scales/g_idx shapes must agree with bits and group size",
            cause: e,
          });
        }
      };
      return build(N, K, bias, mine, (nh) => sliceGptqHalf(t, v2, actOrder, nh, N), 32);
    },
    linear(x, M, h) {
      const l = h as WasmLinear;
      if (!l.w) throw new Error("bug: linear used after release");
      const sw = l.helper, nh = l.nh, N = l.N;
      if (sw) sw.begin(l.handle, x, M, l.K, N - nh);
      let out: Float32Array;
      try {
        out = compute([x], M * N, ([xb], y) => glue.Kernels.matmul(xb!, M, l.w!, 0, nh, y, 0, N));
      } catch (e) {
        try {
          sw?.finish();
        } catch { /* report the first error */ }
        throw e;
      }
      if (sw) {
        sw.finish();
        sw.copyOut(out, M, N, nh, N - nh);
      }
      return out;
    },
    release(h) {
      const l = h as WasmLinear;
      l.w?.free();
      l.w = null;
      const sw = l.helper;
      l.helper = null;
      if (!sw || sw.closed) return;
      sw.release(l.handle);
      if (sw.live === 0 && sw === helper) closeHelper();
    },
    dispose() {
      closeHelper();
    },
    rmsNorm(x, M, H, weight, eps) {
      return compute(
        [x, weight],
        M * H,
        ([xb, wb], out) => glue.Kernels.rms_norm(xb!, M, wb!, eps, out),
      );
    },
    layerNorm(x, M, H, weight, bias, eps) {
      return compute(
        [x, weight, bias ?? new Float32Array(0)],
        M * H,
        ([xb, wb, bb], out) => glue.Kernels.layer_norm(xb!, M, wb!, bb!, eps, out),
      );
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
      const n = (past + T) * Hkv * D;
      return compute(
        [q, kCache.subarray(0, n), vCache.subarray(0, n)],
        T * Hq * D,
        ([qb, kb, vb], out) =>
          glue.Kernels.attention(qb!, T, Hq, D, kb!, vb!, Hkv, past, 1 / Math.sqrt(D), out),
      );
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
