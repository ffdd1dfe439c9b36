// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ solver on the WebGPU device, computing what AutoGPTQ's
 * `fasterquant` computes, in the same order as the WASM solver
 * (`crates/gptq-core/src/gptq/solver.rs`), in f32:
 *
 * 1. {@linkcode WebGpuSolver.prepare} (once per Hessian; two small
 *    readbacks): the diagonal and a non-finite scan come back to the host,
 *    which decides dead columns (`diag = 0 → 1`, weights zeroed), the
 *    act-order permutation (descending diagonal, ties by index) and the
 *    damping `damp_percent · mean(diag)`; the device then forms the damped,
 *    permuted matrix, its Cholesky factor (blocked, `wgsl/gptq_solve_factor.wgsl`
 *    plus the products of `wgsl/gptq_solve_gemm.wgsl`), the inverse of that
 *    factor and, by reversing both indices, the upper Cholesky factor `U` of
 *    `H⁻¹`, exactly as `cholesky → cholesky_inverse → cholesky(upper)`. A
 *    failed Cholesky (read back as one status word) raises the damping by
 *    `damp_auto_increment` while it stays below 1, as the WASM solver does.
 * 2. {@linkcode WebGpuSolver.quantize} (once per weight; one submit, one
 *    readback): W is uploaded, permuted, and quantized by the blocked column
 *    loop with lazy batch updates (`wgsl/gptq_solve_columns.wgsl`; blocks of
 *    `blocksize` ≤ 128 columns, one thread per row), group parameters as
 *    AutoGPTQ computes them (one per row, dynamic groups from the block-start
 *    weights, static groups, MSE clipping). Only the integer codes (bytes),
 *    scales, zeros and per-row losses come back; `Q` is `scale·(code − zero)`,
 *    formed on the host for the rows asked for.
 *
 * The Hessian itself is accumulated on the device ({@linkcode GpuHessian}),
 * from the forward's activations without a host round trip. Round-to-nearest
 * (the report's baseline) runs on the WASM solver, so it is the CPU's, bit for
 * bit.
 *
 * @example Quantize one layer on the device
 * ```ts ignore
 * import { createWebGpuSolver } from "./solver.ts";
 * const s = await createWebGpuSolver();
 * const K = 64, N = 32;
 * const h = s.hessian(K);
 * h.add(new Float32Array(16 * K).map((_, i) => Math.cos(i * 0.37)), 1, 16);
 * const prep = await s.prepare(h, {
 *   bits: 4, group_size: 32, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01,
 * });
 * const r = await s.quantize(prep, new Float32Array(N * K).map((_, i) => Math.sin(i)), N);
 * console.log(r.G, r.codes.length); // 2 2048
 * prep.free();
 * h.free();
 * s.dispose();
 * ```
 *
 * @module
 */

import type { GptqLayerResult, GptqSolveOptions } from "../../quant/solver.ts";
import {
  checkErrorSums,
  checkHostShapes,
  checkLive,
  checkSolveOptions,
  checkWeight,
  type DevicePreparedHessian,
  type DeviceQuantizeOptions,
  gIdxOf,
  groupsOf,
  hostRtn,
  layerResult,
  mseTable,
  NO_FAIL,
  nonFinite,
  planFromDiagonal,
  solveHostHessian,
  solverError,
  withDamping,
} from "../_gptq_solve_host.ts";
import { GpuContext } from "./context.ts";
import { f32, grid, params, rowBlocks } from "./_common.ts";
import { checkSquareFits, GpuHessian } from "./_hessian.ts";
import type { WebGpuBackend } from "./webgpu_backend.ts";

export { GpuHessian } from "./_hessian.ts";

/** Options of {@linkcode createWebGpuSolver}. */
export interface WebGpuSolverOptions {
  /**
   * Share this backend's device (needed to feed Hessians from its tensors);
   * otherwise a device is opened and {@linkcode WebGpuSolver.dispose} closes it.
   */
  backend?: WebGpuBackend;
  /** Or share this device (not closed by {@linkcode WebGpuSolver.dispose}). */
  context?: GpuContext;
  /** Largest storage binding in bytes (default: the backend's or the adapter's limit). */
  maxBindingBytes?: number;
}

/** A Hessian prepared for quantization on the device (its factor `U` lives there). */
export type GpuPreparedHessian = DevicePreparedHessian;

/** Options of {@linkcode WebGpuSolver.quantize}: the tensor name, the rows of `Q` to form. */
export type GpuQuantizeOptions = DeviceQuantizeOptions;

/** The GPTQ solver on a WebGPU device. */
export interface WebGpuSolver {
  /** `webgpu` plus the adapter, e.g. `webgpu (llvmpipe …)`. */
  readonly name: string;
  /** The device. */
  readonly context: GpuContext;
  /** The binding size limit in force. */
  readonly maxBindingBytes: number;
  /**
   * A zero Hessian for `K` inputs on the device.
   *
   * @param K Input features.
   * @param name The module it is for (error messages).
   * @returns The accumulator; `free()` it when done.
   */
  hessian(K: number, name?: string): GpuHessian;
  /**
   * Dead columns, act-order, damping (raised on Cholesky failure) and the
   * factor `U`, on the device.
   *
   * @param h The accumulated Hessian (kept; not modified).
   * @param opts Solver settings.
   * @param name The tensor name, for error messages.
   * @returns The prepared Hessian.
   * @throws {GptqError} `HESSIAN` for a non-finite H or one that stays
   *   singular, with the WASM solver's wording.
   */
  prepare(h: GpuHessian, opts: GptqSolveOptions, name?: string): Promise<GpuPreparedHessian>;
  /**
   * GPTQ-quantizes `w` (`[N, K]`, row-major) with a prepared Hessian.
   *
   * @param prep From {@linkcode prepare}.
   * @param w The weight (not modified).
   * @param N Rows (output features).
   * @param opts Rows of `Q` to form, tensor name.
   * @returns Codes, scales, zeros, `g_idx`, loss and `Q` (all rows, or `qRows`).
   */
  quantize(
    prep: GpuPreparedHessian,
    w: Float32Array,
    N: number,
    opts?: GpuQuantizeOptions,
  ): Promise<GptqLayerResult>;
  /**
   * `prepare` and `quantize` for a Hessian given on the host (the
   * `gptq` of the WASM solver's `QuantBackend`, asynchronous).
   *
   * @param w The weight `[N, K]`.
   * @param N Rows.
   * @param K Columns.
   * @param h The Hessian `[K, K]`.
   * @param opts Solver settings.
   * @param name The tensor name, for error messages.
   * @returns The quantized layer.
   */
  gptq(
    w: Float32Array,
    N: number,
    K: number,
    h: Float32Array,
    opts: GptqSolveOptions,
    name?: string,
  ): Promise<GptqLayerResult>;
  /**
   * `Σ (D·H)∘D` for each of `parts` equal row blocks of `d` (`[M, K]`), on the
   * device against `h` (the sums behind the report's Hessian-weighted errors;
   * like `hessianErrorSums` of `src/quant/solver.ts`).
   *
   * @param h The Hessian.
   * @param d Difference rows `W − Q`.
   * @param M Rows of `d`.
   * @param parts Equal row blocks.
   * @returns One sum per block.
   */
  errorSums(h: GpuHessian, d: Float32Array, M: number, parts: number): Promise<number[]>;
  /**
   * Round-to-nearest with the same quantizer and groups (the WASM solver's, bit for bit).
   *
   * @param w The weight `[N, K]`.
   * @param N Rows.
   * @param K Columns.
   * @param opts Solver settings.
   * @returns The quantized layer.
   */
  rtn(w: Float32Array, N: number, K: number, opts: GptqSolveOptions): GptqLayerResult;
  /** Frees the solver's buffers (and the device, when the solver opened it). */
  dispose(): void;
}

const NB = 64;
const MAX_BLOCK = 128;
const DEVICE = { solver: "WebGPU", maxBlock: MAX_BLOCK };

interface Prepared extends GpuPreparedHessian {
  /** U (K×K). */
  readonly u: GPUBuffer;
  /** perm [K] u32, dead [K] u32, MSE factors [steps] f32. */
  readonly aux: GPUBuffer;
  readonly mseSteps: number;
  freed: boolean;
}

/**
 * Opens the WebGPU GPTQ solver (on a backend's device, or a new one).
 *
 * @example
 * ```ts ignore
 * import { createWebGpuSolver } from "./solver.ts";
 * const s = await createWebGpuSolver();
 * const r = await s.gptq(w, N, K, h, { bits: 4, group_size: 128, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 });
 * s.dispose();
 * ```
 *
 * @param opts The backend to share, binding limit.
 * @returns The solver.
 * @throws {GptqError} `WEBGPU_UNAVAILABLE` when there is no adapter.
 */
export async function createWebGpuSolver(opts: WebGpuSolverOptions = {}): Promise<WebGpuSolver> {
  const owned = !opts.backend && !opts.context;
  const ctx = opts.backend?.context ?? opts.context ?? await GpuContext.create();
  const limit = Math.min(
    opts.maxBindingBytes ?? Infinity,
    opts.backend?.maxBindingBytes ?? Infinity,
    ctx.limits.maxStorageBufferBindingSize,
  );
  const dummies = [ctx.upload(new Float32Array(4)), ctx.upload(new Float32Array(4))] as const;
  const host = await hostRtn("WebGPU");
  const name = `webgpu (${ctx.facts.description})`;

  /** Encodes C = [C +] alpha·A·B (see `wgsl/gptq_solve_gemm.wgsl`); `bufs` are 1..3 distinct buffers. */
  const gemm = (
    bufs: GPUBuffer[],
    m: number,
    n: number,
    kd: number,
    a: [buf: number, off: number, ld: number],
    b: [buf: number, off: number, ld: number, trans: boolean],
    c: [buf: number, off: number, ld: number],
    o: { alpha: number; accumulate: boolean; tri?: "lowerC" | "lowerA" },
  ): void => {
    if (m === 0 || n === 0) return;
    const all = [...bufs, dummies[0], dummies[1]].slice(0, 3);
    const tri = o.tri === "lowerC" ? 1 : o.tri === "lowerA" ? 2 : 0;
    const p = params(
      m,
      n,
      kd,
      a[1],
      a[2],
      b[1],
      b[2],
      c[1],
      c[2],
      a[0],
      b[0],
      c[0],
      b[3] ? 1 : 0,
      tri,
      f32(o.alpha),
      o.accumulate ? 1 : 0,
    );
    ctx.dispatch(ctx.pipeline("gptq_solve_gemm", "gemm"), all, p, [
      Math.ceil(n / 64),
      Math.ceil(m / 64),
    ]);
  };

  /** Encodes fill → Cholesky → inverse → flip into `m` (U), with the pivot status in `status`. */
  const encodeFactor = (
    K: number,
    h: GPUBuffer,
    aux: GPUBuffer,
    m: GPUBuffer,
    scratch: GPUBuffer,
    status: GPUBuffer,
    damp: number,
  ): void => {
    const sq = Math.ceil(K / 16);
    const factor = (entry: string) => ctx.pipeline("gptq_solve_factor", entry);
    ctx.phase("solve.factor");
    ctx.dispatch(factor("fill"), [h, aux, m], params(K, 0, 0, f32(damp), 0), [sq, sq]);
    for (let k0 = 0; k0 < K; k0 += NB) {
      const kb = Math.min(NB, K - k0), rest = K - k0 - kb;
      ctx.dispatch(factor("chol_diag"), [m, status], params(K, k0, kb, f32(0), 0), [1]);
      if (rest === 0) continue;
      const [gx, gy] = grid(ctx, Math.ceil(rest / 64));
      ctx.dispatch(factor("chol_panel"), [m], params(K, k0, kb, f32(0), gx), [gx, gy]);
      // A22 −= L21·L21ᵀ (lower triangle).
      const o21 = (k0 + kb) * K + k0;
      gemm([m], rest, rest, kb, [0, o21, K], [0, o21, K, true], [0, o21 + kb, K], {
        alpha: -1,
        accumulate: true,
        tri: "lowerC",
      });
    }
    // L⁻¹ by blocks from the last: X11 = L11⁻¹; X21 = −(X22·L21)·X11.
    for (let j = Math.floor((K - 1) / NB) * NB; j >= 0; j -= NB) {
      const jb = Math.min(NB, K - j), rest = K - j - jb;
      ctx.dispatch(factor("tri_inv_diag"), [m], params(K, j, jb, f32(0), 0), [1]);
      if (rest === 0) continue;
      const o22 = (j + jb) * K + j + jb, o21 = (j + jb) * K + j;
      gemm([m, scratch], rest, jb, rest, [0, o22, K], [0, o21, K, false], [1, 0, jb], {
        alpha: 1,
        accumulate: false,
        tri: "lowerA",
      });
      gemm([m, scratch], rest, jb, jb, [1, 0, jb], [0, j * K + j, K, false], [0, o21, K], {
        alpha: -1,
        accumulate: false,
      });
    }
    ctx.dispatch(factor("flip"), [m], params(K, 0, 0, f32(0), 0), [sq, sq]);
  };

  const solver: WebGpuSolver = {
    name,
    context: ctx,
    maxBindingBytes: limit,

    hessian(K: number, hname?: string): GpuHessian {
      return new GpuHessian(ctx, K, limit, hname);
    },

    async prepare(h, o, tname) {
      checkSolveOptions(o, tname, DEVICE);
      const K = h.K;
      checkSquareFits(K, limit, tname);
      ctx.phase("solve.factor");
      const hb = h.buffer();
      // 1. Diagonal and the first non-finite value, back to the host.
      const init = new Uint32Array(K + 1);
      init[0] = NO_FAIL;
      const out = ctx.upload(init);
      ctx.dispatch(ctx.pipeline("hessian", "check"), [hb, out], params(0, K), [
        Math.ceil(K / 64),
      ]);
      const raw = await ctx.read(out, 0, (K + 1) * 4);
      ctx.discard(out);
      const first = new Uint32Array(raw, 0, 1)[0]!;
      if (first !== NO_FAIL) {
        const v = new Float32Array(await ctx.read(hb, first * 4, 4))[0]!;
        throw solverError(nonFinite("H", first, K, v), tname);
      }
      // 2. Dead columns, act-order, damping (the Rust prepare_hessian, on the host).
      const plan = planFromDiagonal(new Float32Array(raw, 4, K), o.desc_act);
      const { perm } = plan;
      const fillAux = new Uint32Array(2 * K);
      fillAux.set(perm);
      fillAux.set(new Uint32Array(plan.diag.buffer), K);
      const mse = mseTable(o.mse);
      const colAux = new Uint32Array(2 * K + mse.length);
      colAux.set(perm);
      colAux.set(plan.dead, K);
      colAux.set(new Uint32Array(mse.buffer), 2 * K);
      // 3. U on the device; the damping goes up while the Cholesky fails.
      const auxF = ctx.upload(fillAux);
      const u = ctx.buffer(K * K * 4);
      const scratch = ctx.buffer(K * NB * 4);
      let damp: number;
      try {
        damp = await withDamping(o, plan.mean, K, tname, async (abs) => {
          const status = ctx.upload(new Uint32Array([NO_FAIL, 0, 0, 0]));
          encodeFactor(K, hb, auxF, u, scratch, status, abs);
          const pivot = new Uint32Array(await ctx.read(status, 0, 4))[0]!;
          ctx.discard(status);
          return pivot;
        });
      } catch (e) {
        ctx.release(u);
        throw e;
      } finally {
        ctx.discard(auxF);
        ctx.release(scratch);
      }
      const aux = ctx.upload(colAux);
      const prep: Prepared = {
        K,
        G: groupsOf(K, o),
        gIdx: gIdxOf(perm, o),
        dampUsed: damp,
        deadColumns: plan.nDead,
        perm,
        opts: { ...o },
        u,
        aux,
        mseSteps: mse.length,
        freed: false,
        free() {
          if (prep.freed) return;
          prep.freed = true;
          ctx.release(u);
          ctx.discard(aux);
        },
      };
      return prep;
    },

    async quantize(p, w, N, qo = {}) {
      const prep = p as Prepared;
      const tname = qo.name;
      checkLive(prep.freed, tname);
      const { K, G, opts: o } = prep;
      checkWeight(w, N, K, tname);
      const gw = o.group_size > 0 ? o.group_size : K;
      const mode = o.group_size <= 0 ? 0 : o.static_groups ? 2 : 1;
      const bs = o.blocksize ?? 128;
      const K4 = Math.ceil(K / 4);
      const maxq = (1 << o.bits) - 1;
      const colParams = (rows: number, i1: number, count: number, gx: number) =>
        params(
          K,
          rows,
          G,
          gw,
          i1,
          count,
          K4,
          bs,
          mode,
          f32(maxq),
          o.sym ? 1 : 0,
          prep.mseSteps,
          f32(2.4),
          f32(1),
          gx,
        );
      const col = (entry: string) => ctx.pipeline("gptq_solve_columns", entry);
      const bands = rowBlocks(N, (2 * G + 1 + Math.max(K, bs)) * 4, limit);
      const pending: Promise<[number, number, ArrayBuffer, ArrayBuffer]>[] = [];
      for (const [r0, nr] of bands) {
        const wsrc = ctx.upload(w.subarray(r0 * K, (r0 + nr) * K));
        const wp = ctx.buffer(nr * K * 4);
        const codes = ctx.buffer(nr * K4 * 4);
        const sz = ctx.buffer(nr * (2 * G + 1) * 4);
        const err = ctx.buffer(nr * bs * 4);
        ctx.phase("solve.columns");
        ctx.clear(codes, 0, nr * K4 * 4);
        ctx.clear(sz, 0, nr * (2 * G + 1) * 4);
        ctx.dispatch(col("permute"), [wsrc, prep.aux, wp], colParams(nr, 0, 0, 0), [
          Math.ceil(K / 16),
          Math.ceil(nr / 16),
        ]);
        if (mode !== 1) {
          const [gx, gy] = grid(ctx, Math.ceil((nr * G) / 64));
          ctx.dispatch(col("params_rows"), [wsrc, prep.aux, sz], colParams(nr, 0, 0, gx), [gx, gy]);
        }
        ctx.discard(wsrc);
        const [gx, gy] = grid(ctx, Math.ceil(nr / 32));
        for (let i1 = 0; i1 < K; i1 += bs) {
          const count = Math.min(bs, K - i1), i2 = i1 + count;
          ctx.phase("solve.columns");
          ctx.dispatch(
            col("columns"),
            [wp, prep.aux, sz, prep.u, err, codes],
            colParams(nr, i1, count, gx),
            [gx, gy],
          );
          // Lazy batch update: W[:, i2:] −= Err1 · U[i1:i2, i2:].
          ctx.phase("solve.update");
          gemm([wp, err, prep.u], nr, K - i2, count, [1, 0, bs], [2, i1 * K + i2, K, false], [
            0,
            i2,
            K,
          ], { alpha: -1, accumulate: true });
        }
        ctx.release(wp);
        ctx.release(err);
        pending.push(
          Promise.all([ctx.read(codes, 0, nr * K4 * 4), ctx.read(sz, 0, nr * (2 * G + 1) * 4)])
            .then(([c, s]) => {
              ctx.release(codes);
              ctx.release(sz);
              return [r0, nr, c, s];
            }),
        );
      }
      const codes = new Uint8Array(N * K);
      const scale = new Float32Array(N * G), zero = new Float32Array(N * G);
      let loss = 0;
      for (const [r0, nr, c, s] of await Promise.all(pending)) {
        const bytes = new Uint8Array(c);
        if (K4 * 4 === K) codes.set(bytes.subarray(0, nr * K), r0 * K);
        else {
          for (let r = 0; r < nr; r++) {
            codes.set(bytes.subarray(r * K4 * 4, r * K4 * 4 + K), (r0 + r) * K);
          }
        }
        const f = new Float32Array(s);
        scale.set(f.subarray(0, nr * G), r0 * G);
        zero.set(f.subarray(nr * G, 2 * nr * G), r0 * G);
        for (let r = 0; r < nr; r++) loss += f[2 * nr * G + r]!;
      }
      return layerResult(prep, { codes, scale, zero, loss }, qo.qRows);
    },

    async gptq(w, N, K, h, o, tname) {
      checkSolveOptions(o, tname, DEVICE);
      checkHostShapes(w, N, K, h, tname);
      checkSquareFits(K, limit, tname);
      return await solveHostHessian(
        new GpuHessian(ctx, K, limit, tname),
        h,
        (hess) => solver.prepare(hess, o, tname),
        (prep) => solver.quantize(prep, w, N, tname ? { name: tname } : {}),
      );
    },

    async errorSums(h, d, M, parts) {
      const K = h.K;
      checkErrorSums(d, M, K, parts);
      const hb = h.buffer();
      const sums: number[] = [];
      const per = M / parts;
      // Row blocks of D (and Y) that fit a binding; partial sums of 256 columns per row.
      const chunks = Math.ceil(K / 256);
      const reads: Promise<[number, ArrayBuffer]>[] = [];
      for (const [r0, n] of rowBlocks(M, K * 4, limit)) {
        const db = ctx.upload(d.subarray(r0 * K, (r0 + n) * K));
        const y = ctx.buffer(n * K * 4);
        const part = ctx.buffer(n * chunks * 4);
        gemm([y, db, hb], n, K, K, [1, 0, K], [2, 0, K, false], [0, 0, K], {
          alpha: 1,
          accumulate: false,
        });
        ctx.dispatch(
          ctx.pipeline("gptq_solve_gemm", "rowdot"),
          [y, db, part],
          params(n, K, chunks),
          [Math.ceil((n * chunks) / 64)],
        );
        ctx.discard(db);
        ctx.release(y);
        reads.push(
          ctx.read(part, 0, n * chunks * 4).then((b) => {
            ctx.release(part);
            return [r0, b];
          }),
        );
      }
      const total = new Float64Array(parts);
      for (const [r0, b] of await Promise.all(reads)) {
        const f = new Float32Array(b);
        for (let i = 0; i < f.length; i++) {
          total[Math.floor((r0 + Math.floor(i / chunks)) / per)]! += f[i]!;
        }
      }
      for (const t of total) sums.push(t);
      return sums;
    },

    rtn: (w, N, K, o) => host.rtn(w, N, K, o),

    dispose() {
      for (const b of dummies) b.destroy();
      host.close();
      if (owned) ctx.destroy();
    },
  };
  return solver;
}
