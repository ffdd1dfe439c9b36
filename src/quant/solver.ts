// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ solver as a backend operation: accumulate a Hessian, then
 * quantize a weight with it (or round to nearest, the baseline). This is the
 * CPU/WASM implementation (Rust `gptq-core`); WebGPU and CUDA/HIP plug into
 * the same {@linkcode QuantBackend} interface.
 *
 * It works without the model runtime: give it `W` and `H`, get the
 * quantized layer.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { loadWasm } from "../wasm/mod.ts";
import * as glue from "../wasm/_generated/gptq_wasm.internal.js";
import { prepareArgs, solveSettings } from "./_solve_settings.ts";

/** Solver settings, named as in AutoGPTQ / transformers' GPTQConfig. */
export interface GptqSolveOptions {
  /** 2, 3, 4 or 8. */
  bits: number;
  /** Columns per group; -1 for one group per row. */
  group_size: number;
  /** Symmetric quantization. */
  sym: boolean;
  /** Act-order: process columns by decreasing Hessian diagonal. */
  desc_act: boolean;
  /** Precompute group parameters before the error feedback. */
  static_groups: boolean;
  /** Damping as a fraction of mean(diag H). */
  damp_percent: number;
  /** Added to damping after each Cholesky failure (0 disables; GPTQModel's default 0.0025). */
  damp_auto_increment?: number;
  /** MSE grid search for the clipping range (norm 2.4, grid 100, maxshrink 0.8). */
  mse?: boolean;
  /** Columns per lazy-update block (default 128). */
  blocksize?: number;
}

/** One quantized layer. */
export interface GptqLayerResult {
  /** Fake-quantized weight `[N, K]`. */
  q: Float32Array;
  /** Integer codes `[N, K]`, 0 .. 2^bits − 1. */
  codes: Uint8Array;
  /** Scales `[N, G]` (groups in creation order). */
  scale: Float32Array;
  /** Zero points `[N, G]`. */
  zero: Float32Array;
  /** Group of each input column `[K]`. */
  gIdx: Int32Array;
  /** Number of groups. */
  G: number;
  /** AutoGPTQ's loss (Σ (w−q)²/d²/2). */
  loss: number;
  /** Damping finally used (after automatic increases). */
  dampUsed: number;
  /** Columns with a zero Hessian diagonal. */
  deadColumns: number;
}

/** A streaming Hessian accumulator. */
export interface HessianAccumulator {
  /** Input features. */
  readonly K: number;
  /** Adds `nSeq` sequences of `tokens` rows each (`x` is `[nSeq·tokens, K]`). */
  add(x: Float32Array, nSeq: number, tokens: number): void;
  /** Sequences added so far. */
  readonly nsamples: number;
  /** A copy of `H` (`K×K`). */
  h(): Float32Array;
  /** Frees it. */
  free(): void;
}

/** The solver operations every backend provides. */
export interface QuantBackend {
  /** Backend name. */
  readonly name: string;
  /** A new zero Hessian for K inputs. */
  hessian(K: number): HessianAccumulator;
  /** GPTQ-quantizes `w` (`[N, K]`) with Hessian `h` (`[K, K]`). */
  gptq(
    w: Float32Array,
    N: number,
    K: number,
    h: Float32Array,
    opts: GptqSolveOptions,
    name?: string,
  ): GptqLayerResult;
  /** Round-to-nearest with the same quantizer and groups. */
  rtn(w: Float32Array, N: number, K: number, opts: GptqSolveOptions): GptqLayerResult;
}

function groupsOf(K: number, g: number): number {
  return g === -1 ? 1 : Math.ceil(K / g);
}

function checkOpts(o: GptqSolveOptions): void {
  if (![2, 3, 4, 8].includes(o.bits)) {
    throw new GptqError("INVALID_ARGUMENT", `bits must be 2, 3, 4 or 8, got ${o.bits}`);
  }
  if (!(o.group_size === -1 || (Number.isInteger(o.group_size) && o.group_size > 0))) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `group_size must be -1 or a positive integer, got ${o.group_size}`,
    );
  }
  if (!(o.damp_percent > 0 && o.damp_percent < 1)) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `damp_percent must be in (0, 1), got ${o.damp_percent}`,
    );
  }
}

/**
 * The WASM (Rust `gptq-core`) solver.
 *
 * @example Quantize one layer without any model
 * ```ts
 * import { createWasmSolver } from "./solver.ts";
 * const s = await createWasmSolver();
 * const K = 64, N = 32;
 * const w = new Float32Array(N * K).map((_, i) => Math.sin(i));
 * const acc = s.hessian(K);
 * acc.add(new Float32Array(16 * K).map((_, i) => Math.cos(i * 0.37)), 1, 16);
 * const r = s.gptq(w, N, K, acc.h(), { bits: 4, group_size: 32, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 });
 * acc.free();
 * console.log(r.G, r.codes.length); // 2 2048
 * ```
 *
 * @returns The backend.
 */
export async function createWasmSolver(): Promise<QuantBackend> {
  await loadWasm();
  const wrap = (e: unknown, name?: string): never => {
    const msg = e instanceof Error ? e.message : String(e);
    throw new GptqError("HESSIAN", msg, {
      ...(name ? { tensor: name } : {}),
      hint: /cholesky|positive/i.test(msg)
        ? "raise --damp-percent or use more calibration samples"
        : "check the calibration data and the model weights for NaN/Inf",
      cause: e,
    });
  };
  return {
    name: "wasm-simd128",
    hessian(K) {
      const acc = new glue.HessianAcc(K);
      return {
        K,
        add(x, nSeq, tokens) {
          if (x.length !== nSeq * tokens * K) {
            throw new GptqError(
              "SHAPE",
              `Hessian input has ${x.length} values, expected ${nSeq}×${tokens}×${K}`,
            );
          }
          try {
            acc.add_batch(x, nSeq, tokens);
          } catch (e) {
            wrap(e);
          }
        },
        get nsamples() {
          return acc.nsamples;
        },
        h: () => acc.h(),
        free: () => acc.free(),
      };
    },
    gptq(w, N, K, h, o, name) {
      checkOpts(o);
      if (w.length !== N * K || h.length !== K * K) {
        throw new GptqError(
          "SHAPE",
          `gptq: W has ${w.length} values (N·K = ${N * K}), H has ${h.length} (K² = ${K * K})`,
          {
            ...(name ? { tensor: name } : {}),
          },
        );
      }
      let prep: glue.Prepared | undefined;
      try {
        prep = glue.prepare_hessian(h, K, ...prepareArgs(solveSettings(o)));
        const G = prep.num_groups;
        const q = new Float32Array(N * K), codes = new Uint8Array(N * K);
        const scale = new Float32Array(N * G), zero = new Float32Array(N * G);
        let loss = 0;
        for (const [r0, r1] of rowChunks(N, K)) {
          loss += prep.quantize_rows(
            w.subarray(r0 * K, r1 * K),
            r1 - r0,
            q.subarray(r0 * K, r1 * K),
            codes.subarray(r0 * K, r1 * K),
            scale.subarray(r0 * G, r1 * G),
            zero.subarray(r0 * G, r1 * G),
          );
        }
        return {
          q,
          codes,
          scale,
          zero,
          gIdx: prep.g_idx(),
          G,
          loss,
          dampUsed: prep.damp_used,
          deadColumns: prep.dead_columns,
        };
      } catch (e) {
        if (e instanceof GptqError) throw e;
        return wrap(e, name);
      } finally {
        prep?.free();
      }
    },
    rtn(w, N, K, o) {
      checkOpts(o);
      const G = groupsOf(K, o.group_size);
      const q = new Float32Array(N * K), codes = new Uint8Array(N * K);
      const scale = new Float32Array(N * G), zero = new Float32Array(N * G);
      try {
        for (const [r0, r1] of rowChunks(N, K)) {
          glue.rtn_quantize(
            w.subarray(r0 * K, r1 * K),
            r1 - r0,
            K,
            o.bits,
            o.group_size,
            o.sym,
            o.mse ?? false,
            q.subarray(r0 * K, r1 * K),
            codes.subarray(r0 * K, r1 * K),
            scale.subarray(r0 * G, r1 * G),
            zero.subarray(r0 * G, r1 * G),
          );
        }
      } catch (e) {
        wrap(e);
      }
      const gIdx = new Int32Array(K);
      for (let k = 0; k < K; k++) gIdx[k] = o.group_size === -1 ? 0 : Math.floor(k / o.group_size);
      return { q, codes, scale, zero, gIdx, G, loss: NaN, dampUsed: NaN, deadColumns: 0 };
    },
  };
}

/**
 * Row ranges of at most ~32 MiB of `W` each. Rows are quantized
 * independently, so chunking is bit-identical; it bounds what the wasm memory
 * (which never shrinks) must hold at once to one chunk of `W`, `Q` and codes
 * instead of whole 11008×4096 layers.
 */
function* rowChunks(N: number, K: number): Generator<[number, number]> {
  const rows = Math.max(1, Math.floor((1 << 23) / K));
  for (let r0 = 0; r0 < N; r0 += rows) yield [r0, Math.min(N, r0 + rows)];
}

/**
 * The proxy error AutoGPTQ minimizes, `tr((W−Q) H (W−Q)ᵀ)`, comparable between
 * GPTQ and RTN on the same Hessian.
 *
 * @example
 * ```ts
 * import { hessianError } from "./solver.ts";
 * console.log(hessianError(new Float32Array([1]), new Float32Array([0]), new Float32Array([2]), 1, 1)); // 2
 * ```
 *
 * @param w Original `[N, K]`.
 * @param q Quantized `[N, K]`.
 * @param h Hessian `[K, K]`.
 * @param N Rows.
 * @param K Columns.
 * @returns The error.
 */
export function hessianError(
  w: Float32Array,
  q: Float32Array,
  h: Float32Array,
  N: number,
  K: number,
): number {
  const d = new Float64Array(K);
  const hd = new Float64Array(K);
  let total = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) d[k] = w[n * K + k]! - q[n * K + k]!;
    hd.fill(0);
    for (let i = 0; i < K; i++) {
      const di = d[i]!;
      if (di === 0) continue;
      const row = i * K;
      for (let j = 0; j < K; j++) hd[j]! += di * h[row + j]!;
    }
    for (let j = 0; j < K; j++) total += hd[j]! * d[j]!;
  }
  return total;
}

/**
 * {@linkcode hessianError} for several quantizations of one weight at once,
 * computed with the WASM matmul (`(W−Q)·H` is one GEMM) on at most `maxRows`
 * evenly spaced rows of W (all rows when N ≤ maxRows), so reports stay cheap
 * at Llama-7B sizes. With sampled rows the values are scaled to all N rows
 * (an estimate, consistent between the quantizations compared).
 *
 * @example
 * ```ts
 * import { hessianErrors } from "./solver.ts";
 * const [e] = await hessianErrors(new Float32Array([1]), [new Float32Array([0])], new Float32Array([2]), 1, 1);
 * console.log(e); // 2
 * ```
 *
 * @param w Original `[N, K]`.
 * @param qs Quantized versions, each `[N, K]`.
 * @param h Hessian `[K, K]` (symmetric).
 * @param N Rows.
 * @param K Columns.
 * @param maxRows Rows sampled at most (default 256).
 * @returns One error per entry of `qs`.
 */
export async function hessianErrors(
  w: Float32Array,
  qs: Float32Array[],
  h: Float32Array,
  N: number,
  K: number,
  maxRows = 256,
): Promise<number[]> {
  const pick = sampledRows(N, maxRows);
  const rows = pick.length;
  const M = rows * qs.length;
  const d = new Float32Array(M * K);
  qs.forEach((q, j) => {
    pick.forEach((n, i) => {
      const o = (j * rows + i) * K;
      for (let k = 0; k < K; k++) d[o + k] = w[n * K + k]! - q[n * K + k]!;
    });
  });
  const sums = await hessianErrorSums(d, M, h, K, qs.length);
  return sums.map((t) => (t * N) / rows);
}

/**
 * The rows {@linkcode hessianErrors} samples: `min(N, maxRows)` evenly
 * spaced rows, ascending and distinct.
 *
 * @example
 * ```ts
 * import { sampledRows } from "./solver.ts";
 * console.log(sampledRows(10, 4)); // [ 0, 2, 5, 7 ]
 * ```
 *
 * @param N Rows of the weight.
 * @param maxRows Rows sampled at most (default 256).
 * @returns Row indices.
 */
export function sampledRows(N: number, maxRows = 256): number[] {
  const rows = Math.min(N, maxRows);
  return Array.from({ length: rows }, (_, i) => Math.floor((i * N) / rows));
}

/**
 * The sums behind {@linkcode hessianErrors}: with `Y = D·H` (one WASM
 * matmul over all `M` rows of `d`), `Σ Y[i,j]·D[i,j]` in f64 for each of
 * `parts` equal row blocks of `d`. Scaling a block's sum by `N / rows`
 * gives its error estimate. Worker 0 of the parallel solver computes the
 * same sums, bit for bit, against a Hessian it holds.
 *
 * @example
 * ```ts
 * import { hessianErrorSums } from "./solver.ts";
 * const h = new Float32Array([2, 0, 0, 3]);
 * const d = new Float32Array([1, 1, 0, 2]); // two rows
 * console.log(await hessianErrorSums(d, 2, h, 2, 2)); // [ 5, 12 ]
 * ```
 *
 * @param d Difference rows `W−Q`, `[M, K]`.
 * @param M Rows of `d`.
 * @param h Hessian `[K, K]` (symmetric).
 * @param K Columns.
 * @param parts Equal row blocks of `d` to sum separately.
 * @returns One sum per block.
 */
export async function hessianErrorSums(
  d: Float32Array,
  M: number,
  h: Float32Array,
  K: number,
  parts: number,
): Promise<number[]> {
  if (
    !Number.isSafeInteger(M) || !Number.isSafeInteger(parts) || parts < 1 || M % parts !== 0 ||
    d.length !== M * K || h.length !== K * K
  ) {
    throw new GptqError(
      "SHAPE",
      `hessianErrorSums: D has ${d.length} values for ${M} rows of K = ${K} in ${parts} parts, ` +
        `H has ${h.length} (K² = ${K * K})`,
    );
  }
  await loadWasm();
  const per = (M / parts) * K;
  const hw = glue.WeightBuf.from_f32(h, K, K);
  const x = glue.F32Buf.from_array(d);
  const y = new glue.F32Buf(M * K);
  try {
    glue.Kernels.matmul(x, M, hw, 0, K, y, 0, K);
    const dh = y.to_vec();
    return Array.from({ length: parts }, (_, j) => {
      let t = 0;
      for (let i = j * per; i < (j + 1) * per; i++) t += dh[i]! * d[i]!;
      return t;
    });
  } finally {
    hw.free();
    x.free();
    y.free();
  }
}
