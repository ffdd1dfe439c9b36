// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ solver on a CUDA or HIP device (`ffi/src/solve.cu`), computing
 * what AutoGPTQ's `fasterquant` computes in the order of the WASM solver
 * (`crates/gptq-core/src/gptq/solver.rs`) and of the WebGPU solver
 * (`../webgpu/solver.ts`), in f32, with the same interface as the latter:
 *
 * 1. {@linkcode CudaSolver.prepare} (once per Hessian; two small reads): the
 *    diagonal and the first non-finite entry come back to the host, which
 *    decides dead columns (`diag = 0 → 1`, weights zeroed), the act-order
 *    permutation (descending diagonal, ties by index) and the damping
 *    `damp_percent · mean(diag)`; the device forms the upper Cholesky factor
 *    `U` of the damped, permuted `H⁻¹` (`cholesky → cholesky_inverse →
 *    cholesky(upper)`). A failed Cholesky (one status word) raises the damping
 *    by `damp_auto_increment` while it stays below 1.
 * 2. {@linkcode CudaSolver.quantize} (once per weight; one upload, one read
 *    per band of rows): the blocked column loop with lazy batch updates
 *    (blocks of `blocksize` ≤ 128 columns), group parameters as AutoGPTQ
 *    computes them (one per row, dynamic groups from the block-start weights,
 *    static groups, MSE clipping). Codes, scales, zeros and per-row losses
 *    come back; `Q = scale·(code − zero)` is formed on the host.
 *
 * The Hessian is accumulated on the device ({@linkcode CudaHessian}), from
 * host rows or from the CUDA backend's tensors. Round-to-nearest runs on the
 * WASM solver (the CPU's, bit for bit).
 *
 * @example Quantize one layer on the device
 * ```ts ignore
 * import { createCudaSolver } from "./solver.ts";
 * const s = await createCudaSolver({ kind: "cuda" });
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

import { GptqError } from "../../errors.ts";
import type { GptqLayerResult, GptqSolveOptions } from "../../quant/solver.ts";
import type { Tensor } from "../backend.ts";
import { createCudaBackend, type CudaBackend, type CudaTensor } from "./cuda_backend.ts";
import { type GpuLibrary, type GpuLibraryKind, SOLVE_MAX_BLOCK } from "./ffi.ts";
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

const DEVICE = { solver: "CUDA", maxBlock: SOLVE_MAX_BLOCK };
/** Bytes of one band's weight copy: rows of W are solved in bands of at most this much. */
const BAND_BYTES = 512 * 2 ** 20;

/** Options of {@linkcode createCudaSolver}. */
export interface CudaSolverOptions {
  /** Share this backend's device (needed to feed Hessians from its tensors). */
  backend?: CudaBackend;
  /** Otherwise open a backend of this build (default `cuda`); `dispose` closes it. */
  kind?: GpuLibraryKind;
  /** Rows of W solved at once (default: as many as fit 512 MiB); for tests. */
  maxBandRows?: number;
}

/** Frees device memory once. */
class DeviceBuffer {
  #ptr: bigint;
  readonly #lib: GpuLibrary;
  constructor(lib: GpuLibrary, bytes: number) {
    this.#lib = lib;
    this.#ptr = lib.malloc(Math.max(bytes, 4));
  }
  get ptr(): bigint {
    if (this.#ptr === 0n) throw new GptqError("INVALID_ARGUMENT", "this device buffer was freed");
    return this.#ptr;
  }
  free(): void {
    if (this.#ptr === 0n) return;
    const p = this.#ptr;
    this.#ptr = 0n;
    this.#lib.check(this.#lib.symbols.gptq_free(p), "freeing device memory");
  }
}

/**
 * A Hessian accumulated on the CUDA/HIP device (from {@linkcode CudaSolver.hessian}):
 * AutoGPTQ's `add_batch` running average `H = n/(n+b)·H + 2/(n+b)·XᵀX` in f32.
 *
 * @example
 * ```ts ignore
 * const h = solver.hessian(4096, "model.layers.0.self_attn.q_proj");
 * h.addTensor(attnIn, 1, attnIn.rows); // a CUDA backend tensor: one kernel, no read
 * const prep = await solver.prepare(h, opts);
 * ```
 */
export class CudaHessian {
  /** Input features. */
  readonly K: number;
  readonly #lib: GpuLibrary;
  #h: DeviceBuffer | null;
  #n = 0;

  /**
   * A zero `K×K` Hessian on the device.
   *
   * @param lib The library (initialized).
   * @param K Input features.
   */
  constructor(lib: GpuLibrary, K: number) {
    if (!Number.isSafeInteger(K) || K < 1 || K > 65535) {
      throw new GptqError("SHAPE", `a Hessian needs 1 ≤ K ≤ 65535 input features, got ${K}`);
    }
    this.K = K;
    this.#lib = lib;
    this.#h = new DeviceBuffer(lib, K * K * 4);
    lib.check(lib.symbols.gptq_memset(this.#h.ptr, 0, BigInt(K * K * 4)), "clearing a Hessian");
  }

  /** Sequences added so far (AutoGPTQ's `nsamples`). */
  get nsamples(): number {
    return this.#n;
  }

  /** The device pointer of `H` (`K×K` f32, symmetric). */
  get ptr(): bigint {
    if (!this.#h) throw new GptqError("INVALID_ARGUMENT", "this Hessian was freed");
    return this.#h.ptr;
  }

  #accumulate(x: bigint, rows: number, nSeq: number): void {
    const old = this.#n, next = old + nSeq;
    this.#lib.check(
      this.#lib.symbols.gptq_hessian_accumulate(this.ptr, x, rows, this.K, 2 / next, old / next),
      "gptq_hessian_accumulate",
    );
    this.#n = next;
  }

  /**
   * Adds `nSeq` sequences of `tokens` rows that are a tensor of the CUDA
   * backend on this device (`[nSeq·tokens, K]`); enqueued, nothing is read.
   *
   * @param x The activations.
   * @param nSeq Sequences in `x` (AutoGPTQ counts sequences, not tokens).
   * @param tokens Tokens per sequence.
   */
  addTensor(x: Tensor, nSeq: number, tokens: number): void {
    const ptr = (x as Partial<CudaTensor>).ptr;
    if (typeof ptr !== "bigint") {
      throw new GptqError("INVALID_ARGUMENT", "addTensor takes a tensor of the CUDA backend");
    }
    if (x.cols !== this.K || x.rows !== nSeq * tokens || !(nSeq >= 1) || !Number.isInteger(nSeq)) {
      throw new GptqError(
        "SHAPE",
        `Hessian input is [${x.rows}, ${x.cols}], expected ${nSeq}×${tokens} rows of ${this.K} ` +
          "features (n_seq ≥ 1)",
      );
    }
    this.#accumulate(ptr, x.rows, nSeq);
  }

  /**
   * Uploads host activations and adds them.
   *
   * @param x `[nSeq·tokens, K]` row-major.
   * @param nSeq Sequences.
   * @param tokens Tokens per sequence.
   */
  add(x: Float32Array, nSeq: number, tokens: number): void {
    if (x.length !== nSeq * tokens * this.K || !(nSeq >= 1) || !Number.isInteger(nSeq)) {
      throw new GptqError(
        "SHAPE",
        `Hessian input has ${x.length} values, expected ${nSeq}×${tokens}×${this.K}`,
      );
    }
    const b = new DeviceBuffer(this.#lib, x.byteLength);
    try {
      this.#lib.upload(b.ptr, x);
      this.#accumulate(b.ptr, nSeq * tokens, nSeq);
    } finally {
      b.free(); // waits for the device: the kernel has read it
    }
  }

  /**
   * Replaces `H` by a given one, keeping the sample count.
   *
   * @param h `[K, K]`, symmetric.
   */
  setMatrix(h: Float32Array): void {
    if (h.length !== this.K * this.K) {
      throw new GptqError("SHAPE", `H has ${h.length} values, expected K² = ${this.K ** 2}`);
    }
    this.#lib.upload(this.ptr, h);
  }

  /**
   * Reads `H` back.
   *
   * @returns A copy (`K×K`).
   */
  async read(): Promise<Float32Array> {
    const out = new Float32Array(this.K * this.K);
    await this.#lib.read(this.ptr, out);
    return out;
  }

  /** Frees the device memory. */
  free(): void {
    this.#h?.free();
    this.#h = null;
  }
}

/** A Hessian prepared for quantization on the device (its factor `U` lives there). */
export type CudaPreparedHessian = DevicePreparedHessian;

/** Options of {@linkcode CudaSolver.quantize}: the tensor name, the rows of `Q` to form. */
export type CudaQuantizeOptions = DeviceQuantizeOptions;

/** The GPTQ solver on a CUDA/HIP device (the interface of the WebGPU solver). */
export interface CudaSolver {
  /** The build and the device, e.g. `cuda (NVIDIA H200, 139.8 GiB, sm_90)`. */
  readonly name: string;
  /** The backend whose device it uses. */
  readonly backend: CudaBackend;
  /**
   * A zero Hessian for `K` inputs on the device.
   *
   * @param K Input features.
   * @returns The accumulator; `free()` it when done.
   */
  hessian(K: number): CudaHessian;
  /**
   * Dead columns, act-order, damping (raised on Cholesky failure) and `U`.
   *
   * @param h The accumulated Hessian (not modified).
   * @param opts Solver settings.
   * @param name The tensor name, for error messages.
   * @returns The prepared Hessian.
   * @throws {GptqError} `HESSIAN` for a non-finite H or one that stays singular (the WASM
   *   solver's wording).
   */
  prepare(h: CudaHessian, opts: GptqSolveOptions, name?: string): Promise<CudaPreparedHessian>;
  /**
   * GPTQ-quantizes `w` (`[N, K]`) with a prepared Hessian.
   *
   * @param prep From {@linkcode prepare}.
   * @param w The weight (not modified).
   * @param N Rows.
   * @param opts Rows of `Q` to form, tensor name.
   * @returns Codes, scales, zeros, `g_idx`, loss and `Q`.
   */
  quantize(
    prep: CudaPreparedHessian,
    w: Float32Array,
    N: number,
    opts?: CudaQuantizeOptions,
  ): Promise<GptqLayerResult>;
  /**
   * `prepare` and `quantize` for a Hessian on the host.
   *
   * @param w The weight `[N, K]`.
   * @param N Rows.
   * @param K Columns.
   * @param h The Hessian `[K, K]`.
   * @param opts Solver settings.
   * @param name The tensor name.
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
   * `Σ (D·H)∘D` for each of `parts` equal row blocks of `d` (`[M, K]`).
   *
   * @param h The Hessian.
   * @param d Rows `W − Q`.
   * @param M Rows of `d`.
   * @param parts Equal row blocks.
   * @returns One sum per block.
   */
  errorSums(h: CudaHessian, d: Float32Array, M: number, parts: number): Promise<number[]>;
  /**
   * Round-to-nearest (the WASM solver's, bit for bit).
   *
   * @param w The weight `[N, K]`.
   * @param N Rows.
   * @param K Columns.
   * @param opts Solver settings.
   * @returns The quantized layer.
   */
  rtn(w: Float32Array, N: number, K: number, opts: GptqSolveOptions): GptqLayerResult;
  /** Frees the solver (and the backend, when the solver opened it). */
  dispose(): void;
}

interface Prepared extends CudaPreparedHessian {
  readonly u: DeviceBuffer;
  /** perm (int32 [K]), then dead flags (uint8 [K]) at deadOffset, then the MSE table. */
  readonly aux: DeviceBuffer;
  readonly deadOffset: number;
  readonly mseOffset: number;
  readonly mseSteps: number;
  freed: boolean;
}

/**
 * Opens the CUDA/HIP GPTQ solver on a backend's device (or a new backend).
 *
 * @example
 * ```ts ignore
 * import { createCudaSolver } from "./solver.ts";
 * const s = await createCudaSolver({ kind: "cuda" });
 * const r = await s.gptq(w, N, K, h, { bits: 4, group_size: 128, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 });
 * s.dispose();
 * ```
 *
 * @param opts The backend to share, or the build to open.
 * @returns The solver.
 * @throws {GptqError} `CUDA_UNAVAILABLE` when no device can be used.
 */
export async function createCudaSolver(opts: CudaSolverOptions = {}): Promise<CudaSolver> {
  const owned = !opts.backend;
  const be = opts.backend ?? createCudaBackend({ kind: opts.kind ?? "cuda" });
  const lib = be.library;
  const S = lib.symbols;
  const host = await hostRtn("CUDA");
  const ck = (status: number, what: string) => lib.check(status, what);

  const solver: CudaSolver = {
    name: `${be.name} (${be.device})`,
    backend: be,

    hessian: (K) => new CudaHessian(lib, K),

    async prepare(h, o, tname) {
      checkSolveOptions(o, tname, DEVICE);
      const K = h.K;
      // 1. Diagonal and the first non-finite entry.
      const chk = new DeviceBuffer(lib, (K + 1) * 4);
      const raw = new Uint32Array(K + 1);
      try {
        ck(S.gptq_solve_check(h.ptr, K, chk.ptr), "gptq_solve_check");
        await lib.read(chk.ptr, raw);
      } finally {
        chk.free();
      }
      if (raw[0] !== NO_FAIL) {
        const v = new Float32Array(1);
        await lib.read(h.ptr + BigInt(raw[0]! * 4), v);
        throw solverError(nonFinite("H", raw[0]!, K, v[0]!), tname);
      }
      // 2. Dead columns, act-order and damping on the host (as Rust's prepare_hessian).
      const plan = planFromDiagonal(new Float32Array(raw.buffer, 4, K), o.desc_act);
      const mse = mseTable(o.mse);
      const deadOffset = K * 4, mseOffset = Math.ceil((deadOffset + K) / 4) * 4;
      const host = new Uint8Array(mseOffset + mse.byteLength);
      new Int32Array(host.buffer, 0, K).set(plan.perm);
      host.set(plan.dead, deadOffset);
      host.set(new Uint8Array(mse.buffer), mseOffset);
      const aux = new DeviceBuffer(lib, host.length);
      lib.upload(aux.ptr, host);
      // 3. U on the device; the damping goes up while the Cholesky fails.
      const u = new DeviceBuffer(lib, K * K * 4);
      const diag = new DeviceBuffer(lib, K * 4);
      const scratch = new DeviceBuffer(lib, Number(S.gptq_solve_factor_scratch_bytes(K)));
      const status = new DeviceBuffer(lib, 4);
      let damp: number;
      try {
        lib.upload(diag.ptr, plan.diag);
        damp = await withDamping(o, plan.mean, K, tname, async (abs) => {
          ck(
            S.gptq_solve_factor(h.ptr, K, aux.ptr, diag.ptr, abs, u.ptr, scratch.ptr, status.ptr),
            "gptq_solve_factor",
          );
          const pivot = new Uint32Array(1);
          await lib.read(status.ptr, pivot);
          return pivot[0]!;
        });
      } catch (e) {
        u.free();
        aux.free();
        throw e;
      } finally {
        diag.free();
        scratch.free();
        status.free();
      }
      const prep: Prepared = {
        K,
        G: groupsOf(K, o),
        gIdx: gIdxOf(plan.perm, o),
        dampUsed: damp,
        deadColumns: plan.nDead,
        perm: plan.perm,
        opts: { ...o },
        u,
        aux,
        deadOffset,
        mseOffset,
        mseSteps: mse.length,
        freed: false,
        free() {
          if (prep.freed) return;
          prep.freed = true;
          u.free();
          aux.free();
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
      const bs = o.blocksize ?? 128;
      const band = Math.max(1, Math.min(N, opts.maxBandRows ?? Math.floor(BAND_BYTES / (K * 4))));
      const codes = new Uint8Array(N * K);
      const scale = new Float32Array(N * G), zero = new Float32Array(N * G);
      let loss = 0;
      const rows0 = Math.min(band, N);
      const wb = new DeviceBuffer(lib, rows0 * K * 4);
      const scratch = new DeviceBuffer(
        lib,
        Number(S.gptq_solve_columns_scratch_bytes(rows0, K, bs)),
      );
      // Outputs of a band: codes [rows, K] u8, then scale, zero [rows, G], loss [rows] f32.
      const cOff = 0, sOff = Math.ceil(rows0 * K / 256) * 256;
      const out = new DeviceBuffer(lib, sOff + (2 * rows0 * G + rows0) * 4);
      try {
        for (let r0 = 0; r0 < N; r0 += band) {
          const nr = Math.min(band, N - r0);
          lib.upload(wb.ptr, w.subarray(r0 * K, (r0 + nr) * K));
          const base = out.ptr;
          const sp = base + BigInt(sOff), zp = sp + BigInt(nr * G * 4);
          const lp = zp + BigInt(nr * G * 4);
          ck(
            S.gptq_solve_columns(
              wb.ptr,
              nr,
              K,
              prep.u.ptr,
              prep.aux.ptr,
              prep.aux.ptr + BigInt(prep.deadOffset),
              prep.mseSteps ? prep.aux.ptr + BigInt(prep.mseOffset) : 0n,
              prep.mseSteps,
              o.bits,
              o.group_size,
              o.sym ? 1 : 0,
              o.static_groups ? 1 : 0,
              bs,
              scratch.ptr,
              base + BigInt(cOff),
              sp,
              zp,
              lp,
            ),
            "gptq_solve_columns",
          );
          const back = new Uint8Array(sOff + (2 * nr * G + nr) * 4);
          await lib.read(base, back);
          codes.set(back.subarray(0, nr * K), r0 * K);
          const f = new Float32Array(back.buffer, sOff, 2 * nr * G + nr);
          scale.set(f.subarray(0, nr * G), r0 * G);
          zero.set(f.subarray(nr * G, 2 * nr * G), r0 * G);
          for (let r = 0; r < nr; r++) loss += f[2 * nr * G + r]!;
        }
      } finally {
        wb.free();
        scratch.free();
        out.free();
      }
      return layerResult(prep, { codes, scale, zero, loss }, qo.qRows);
    },

    async gptq(w, N, K, h, o, tname) {
      checkSolveOptions(o, tname, DEVICE);
      checkHostShapes(w, N, K, h, tname);
      return await solveHostHessian(
        new CudaHessian(lib, K),
        h,
        (hess) => solver.prepare(hess, o, tname),
        (prep) => solver.quantize(prep, w, N, tname ? { name: tname } : {}),
      );
    },

    async errorSums(h, d, M, parts) {
      const K = h.K;
      checkErrorSums(d, M, K, parts);
      const db = new DeviceBuffer(lib, M * K * 4), y = new DeviceBuffer(lib, M * K * 4);
      const ob = new DeviceBuffer(lib, M * 4);
      const rows = new Float32Array(M);
      try {
        lib.upload(db.ptr, d);
        ck(S.gptq_solve_error_sums(h.ptr, K, db.ptr, M, y.ptr, ob.ptr), "gptq_solve_error_sums");
        await lib.read(ob.ptr, rows);
      } finally {
        db.free();
        y.free();
        ob.free();
      }
      const per = M / parts, total = new Array<number>(parts).fill(0);
      for (let m = 0; m < M; m++) total[Math.floor(m / per)]! += rows[m]!;
      return total;
    },

    rtn: (w, N, K, o) => host.rtn(w, N, K, o),

    dispose() {
      host.close();
      if (owned) be.dispose();
    },
  };
  return solver;
}
