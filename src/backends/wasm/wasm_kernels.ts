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
 * scales up per row ({@linkcode WasmKernelsOptions.actOrder}). With
 * `actQuant: "int8"` GPTQ linears quantize their activations to int8 per 32
 * values and use integer dot products instead (llama.cpp's route: faster,
 * slightly different numerics; {@linkcode WasmKernelsOptions.actQuant}).
 *
 * With `threads: T > 1` (default: every core, `navigator.hardwareConcurrency`,
 * at most {@linkcode MAX_WASM_THREADS}) a large linear (N·K ≥ 65536) is
 * split by output rows into up to T contiguous parts of at least 32768
 * weights each (GPTQ: at multiples of 32 columns, dense: of 8 rows): this
 * thread keeps the first part, helper Workers (`_sync_pool.ts`) one further
 * part each, and each call runs all parts at once, synchronously. Every
 * output element is computed by one thread with the same kernel over the
 * same K order, so the output is bit-identical for any T. The helpers start
 * with the first linear that needs them and stop when their last part is
 * released (or on `dispose()`).
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
import { attentionBounds } from "./_attention_split.ts";
import {
  type GptqHalf,
  halfBytes,
  type HalfWeight,
  helperUnavailable,
  sliceGptqHalf,
  sliceHalf,
  SyncWorker,
} from "./_sync_pool.ts";

/** Output rows `n0..n1` of a linear held by a helper Worker under `handle`. */
interface Part {
  sw: SyncWorker;
  handle: number;
  n0: number;
  n1: number;
}

interface WasmLinear extends LinearHandle {
  w: glue.WeightBuf | null;
  /** Rows this thread computes (all of N unless split). */
  nh: number;
  /** The helpers' parts, in row order (rows nh..N); empty unless split. */
  parts: Part[];
}

/** The most threads {@linkcode createWasmKernels} runs (and the default's cap). */
export const MAX_WASM_THREADS = 64;

/** A thread count and why it was chosen (see {@linkcode wasmThreads}). */
export interface WasmThreads {
  /** Threads the kernels will run (this one plus `threads - 1` helper Workers). */
  threads: number;
  /** Why, in words, e.g. "2 threads = all cores (default)". */
  why: string;
}

/**
 * Resolves the thread count of {@linkcode createWasmKernels}: the requested
 * one, or by default every core (`navigator.hardwareConcurrency`, capped at
 * {@linkcode MAX_WASM_THREADS}), or 1 where helper Workers cannot load.
 *
 * @example
 * ```ts
 * import { wasmThreads } from "./wasm_kernels.ts";
 * console.log(wasmThreads(1)); // { threads: 1, why: "1 thread (asked for)" }
 * ```
 *
 * @param requested The asked-for count, or undefined for the default.
 * @returns The count and the reason.
 * @throws {GptqError} INVALID_ARGUMENT when `requested` is not an integer in
 * 1..{@linkcode MAX_WASM_THREADS}; WASM when more than one is asked for and
 * helper Workers cannot load here.
 */
export function wasmThreads(requested?: number): WasmThreads {
  const cores = Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
  const coreText = `${cores} core${cores === 1 ? "" : "s"}`;
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1 || requested > MAX_WASM_THREADS) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        `threads must be an integer in [1, ${MAX_WASM_THREADS}], got ${requested}`,
        {
          hint:
            `pass --threads N (threads: N) with 1 ≤ N ≤ ${MAX_WASM_THREADS}; default: ${coreText}`,
        },
      );
    }
    if (requested > 1) {
      const no = helperUnavailable();
      if (no) {
        throw new GptqError("WASM", `cannot use ${requested} threads: ${no}`, {
          hint: "grant --allow-read (or -A), or pass --threads 1 (threads: 1)",
        });
      }
    }
    const over = requested > cores ? `, more than the ${coreText}` : "";
    return { threads: requested, why: `${plural(requested)} (asked for${over})` };
  }
  if (cores === 1) return { threads: 1, why: "1 thread = all cores (default)" };
  const no = helperUnavailable();
  if (no) return { threads: 1, why: `1 thread: ${no}` };
  if (cores > MAX_WASM_THREADS) {
    return {
      threads: MAX_WASM_THREADS,
      why: `${plural(MAX_WASM_THREADS)} (default: ${coreText}, capped at ${MAX_WASM_THREADS})`,
    };
  }
  return { threads: cores, why: `${plural(cores)} = all cores (default)` };
}

function plural(n: number): string {
  return `${n} thread${n === 1 ? "" : "s"}`;
}

/**
 * Row boundaries `[0, b1, …, N]` of a linear split into at most `threads`
 * parts of at least `minPart` weights, at multiples of `align` rows (dense:
 * 8 where there are enough rows, else 1). `[0, N]` when not split.
 */
function splitBounds(
  N: number,
  K: number,
  threads: number,
  minSplit: number,
  gptq: boolean,
): number[] {
  if (threads < 2 || N * K < minSplit || (gptq && N % 32 !== 0)) return [0, N];
  let p = minSplit > 0 ? Math.min(threads, Math.floor((2 * N * K) / minSplit)) : threads;
  let unit = gptq ? 32 : 8;
  if (!gptq && Math.floor(N / unit) < p) unit = 1;
  const units = Math.floor(N / unit);
  p = Math.min(p, units);
  if (p < 2) return [0, N];
  const b = [0];
  for (let i = 1; i < p; i++) b.push(Math.round((i * units) / p) * unit);
  b.push(N);
  return b;
}

/** Options of {@linkcode createWasmKernels}. */
export interface WasmKernelsOptions {
  /**
   * Threads for large linears: this thread plus `threads - 1` helper
   * Workers, 1..{@linkcode MAX_WASM_THREADS}. Default: every core
   * (`navigator.hardwareConcurrency`, capped) when the Workers may be
   * loaded, else 1 (see {@linkcode wasmThreads}). Outputs are bit-identical
   * for any count.
   */
  threads?: number;
  /**
   * Smallest `N·K` split across the threads (default 65536); each part holds
   * at least half of it.
   */
  minSplit?: number;
  /**
   * How GPTQ act-order `g_idx` is handled: `"reorder"` sorts input rows by
   * group at load and gathers `x` per call (ExLlama's way), `"gather"` looks
   * scale and zero up per input row; `"auto"` (default) reorders unless
   * padding groups to 32 rows would add more than 25% to K.
   */
  actOrder?: "auto" | "reorder" | "gather";
  /**
   * Activation precision of GPTQ linears ({@linkcode ActQuant}): `"f32"`
   * (default) multiplies f32 activations by the dequantized weights
   * (exact up to summation order); `"int8"` quantizes the activations to
   * int8 per 32 values (one f32 scale each, llama.cpp's Q8_0) and uses
   * integer dot products with the 2/3/4/8-bit codes: faster, changes the
   * numerics slightly (see the README's perplexity table), always reorders
   * act-order rows. Dense (f32/f16/bf16) linears are unaffected.
   */
  actQuant?: ActQuant;
}

/** Activation precision of GPTQ linears on the CPU (see {@linkcode WasmKernelsOptions.actQuant}). */
export type ActQuant = "f32" | "int8";

/** The default {@linkcode WasmKernelsOptions.actQuant}. */
export const DEFAULT_ACT_QUANT: ActQuant = "f32";

const ACT_ORDER = { auto: 0, reorder: 1, gather: 2 } as const;
const ACT_QUANT = { f32: 0, int8: 1 } as const;

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
/** Query rows from which attention is split over the helper Workers. */
const ATTENTION_SPLIT_ROWS = 32;

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
 * console.log(k.name); // "wasm-relaxed-simd" (relaxed SIMD module) or "wasm-simd128"
 * k.dispose?.();
 * ```
 *
 * @param opts Thread count and split threshold.
 * @returns The backend; call `dispose()` (or release every linear) when done,
 * since a running helper Worker keeps the process alive.
 */
export async function createWasmKernels(opts: WasmKernelsOptions = {}): Promise<Kernels> {
  const { simd } = await loadWasm();
  const simdName = simd === "relaxed" ? "wasm-relaxed-simd" : "wasm-simd128";
  const { threads } = wasmThreads(opts.threads);
  const minSplit = opts.minSplit ?? 1 << 16;
  const actOrder = ACT_ORDER[opts.actOrder ?? "auto"];
  if (actOrder === undefined) {
    throw new GptqError("INVALID_ARGUMENT", `actOrder must be auto, reorder or gather`, {
      hint: `got ${JSON.stringify(opts.actOrder)}`,
    });
  }
  const actQuant = ACT_QUANT[opts.actQuant ?? DEFAULT_ACT_QUANT];
  if (actQuant === undefined) {
    throw new GptqError("INVALID_ARGUMENT", `actQuant must be f32 or int8`, {
      hint: `got ${JSON.stringify(opts.actQuant)}`,
    });
  }
  let noHelper: string | null = threads < 2 ? "1 thread" : null;
  // Helpers run the same module as this thread, so splits stay bit-identical.
  const module = noHelper ? null : await wasmModule(simd);
  /** Helper `i` computes part `i + 1` of every split linear; started on first use. */
  const helpers: (SyncWorker | null)[] = [];
  /** The input the helpers read (grown as needed). */
  let xShared: Float32Array | null = null;
  const getHelper = (i: number): SyncWorker | null => {
    const h = helpers[i];
    if (h && !h.closed) return h;
    if (noHelper || !module) return null;
    try {
      return helpers[i] = SyncWorker.start(module);
    } catch (e) {
      // Keep the helpers that run; later linears stay on this thread.
      noHelper = e instanceof Error ? e.message : String(e);
      return null;
    }
  };
  /**
   * Builds this thread's part (rows 0..b1) and hands each further part to
   * a helper; `gptq` puts the bounds at multiples of 32 columns.
   */
  const build = (
    N: number,
    K: number,
    bias: Float32Array | null,
    mine: (rows: number) => glue.WeightBuf,
    theirs: (n0: number, n1: number) => HalfWeight | GptqHalf,
    gptq: boolean,
  ): WasmLinear => {
    let bounds = noHelper ? [0, N] : splitBounds(N, K, threads, minSplit, gptq);
    const sws: SyncWorker[] = [];
    for (let i = 0; i + 2 < bounds.length; i++) {
      const sw = getHelper(i);
      if (!sw) break;
      sws.push(sw);
    }
    if (sws.length < bounds.length - 2) bounds = [0, N]; // a helper failed to start
    const rows = bounds[1]!;
    const w = mine(rows);
    if (bias) w.set_bias(rows === N ? bias : bias.subarray(0, rows));
    let bytes = w.byte_len();
    const parts: Part[] = [];
    try {
      for (let i = 0; i < sws.length; i++) {
        const n0 = bounds[i + 1]!, n1 = bounds[i + 2]!;
        const half = theirs(n0, n1);
        bytes += halfBytes(half);
        parts.push({ sw: sws[i]!, handle: sws[i]!.load(half), n0, n1 });
      }
    } catch (e) {
      w.free();
      for (const p of parts) releasePart(p);
      throw e;
    }
    return { N, K, bytes, w, nh: rows, parts };
  };
  const releasePart = (p: Part): void => {
    if (p.sw.closed) return;
    p.sw.release(p.handle);
    if (p.sw.live === 0) p.sw.close();
  };
  const closeHelpers = (): void => {
    for (const h of helpers) h?.close();
    helpers.length = 0;
    xShared = null;
  };
  return {
    get name(): string {
      return threads > 1 && noHelper === null ? `${simdName} ×${threads} threads` : simdName;
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
      return build(N, K, bias, mine, (n0, n1) => sliceHalf(t, bias, transposed, n0, n1), false);
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
            actQuant,
          );
        } catch (e) {
          throw new GptqError("GPTQ_FORMAT", `cannot load the quantized linear: ${errText(e)}`, {
            hint: "the qweight/qzeros/scales/g_idx shapes must agree with bits and group size",
            cause: e,
          });
        }
      };
      return build(
        N,
        K,
        bias,
        mine,
        (n0, n1) => sliceGptqHalf(t, v2, actOrder, n0, n1, actQuant),
        true,
      );
    },
    linear(x, M, h) {
      const l = h as WasmLinear;
      if (!l.w) throw new Error("bug: linear used after release");
      const parts = l.parts, nh = l.nh, N = l.N;
      let started = 0;
      let out: Float32Array | undefined;
      let err: unknown = null;
      try {
        // One shared copy of x that every helper reads in place.
        const nx = M * l.K;
        if (parts.length > 0) {
          if (!xShared || xShared.length < nx) {
            const n = Math.max(nx, 2 * (xShared?.length ?? 0));
            xShared = new Float32Array(new SharedArrayBuffer(4 * n));
          }
          xShared.set(nx === x.length ? x : x.subarray(0, nx));
        }
        for (const p of parts) {
          p.sw.begin(p.handle, xShared!, M, l.K, p.n1 - p.n0);
          started++;
        }
        out = compute([x], M * N, ([xb], y) => glue.Kernels.matmul(xb!, M, l.w!, 0, nh, y, 0, N));
      } catch (e) {
        err = e;
      }
      // Wait for every started part, even after an error (the helpers read x
      // and write their shared y until they finish).
      for (let i = 0; i < started; i++) {
        try {
          parts[i]!.sw.finish();
        } catch (e) {
          err ??= e;
        }
      }
      if (err !== null) throw err;
      for (const p of parts) p.sw.copyOut(out!, M, N, p.n0, p.n1 - p.n0);
      return out!;
    },
    release(h) {
      const l = h as WasmLinear;
      l.w?.free();
      l.w = null;
      const parts = l.parts;
      l.parts = [];
      for (const p of parts) releasePart(p);
    },
    dispose() {
      closeHelpers();
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
      // Rows t0..t0+t on this thread (their first at position past + t0).
      const here = (t0: number, t: number) => {
        const n = (past + t0 + t) * Hkv * D;
        return compute(
          [
            q.subarray(t0 * Hq * D, (t0 + t) * Hq * D),
            kCache.subarray(0, n),
            vCache.subarray(0, n),
          ],
          t * Hq * D,
          ([qb, kb, vb], out) =>
            glue.Kernels.attention(qb!, t, Hq, D, kb!, vb!, Hkv, past + t0, 1 / Math.sqrt(D), out),
        );
      };
      // A long prefill splits its query rows over the running helpers (rows
      // are independent, so the result is bit-identical to one thread).
      const sws = T >= ATTENTION_SPLIT_ROWS
        ? helpers.filter((h): h is SyncWorker => h != null && !h.closed)
        : [];
      const b = attentionBounds(T, past, sws.length + 1);
      if (b.length === 2) return here(0, T);
      const HD = Hq * D;
      for (let i = 0; i + 2 < b.length; i++) {
        const t0 = b[i + 1]!, t1 = b[i + 2]!;
        sws[i]!.beginAttention(q.subarray(t0 * HD), kCache, vCache, t1 - t0, Hq, Hkv, D, past + t0);
      }
      const out = new Float32Array(T * HD);
      try {
        out.set(here(0, b[1]!));
      } finally {
        for (let i = 0; i + 2 < b.length; i++) sws[i]!.finish();
      }
      for (let i = 0; i + 2 < b.length; i++) {
        sws[i]!.copyAttention(out, b[i + 1]! * HD, (b[i + 2]! - b[i + 1]!) * HD);
      }
      return out;
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
