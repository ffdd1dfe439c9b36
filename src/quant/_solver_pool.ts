// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WASM GPTQ solver on several Workers. The Hessian is prepared once
 * (Cholesky + inverse, `O(K³)`): for `K ≥ 512` split across all Workers
 * (`./_solver_dist.ts`: each owns row blocks of the factor and updates them,
 * and ends up with the whole factor `U`), for smaller `K` on Worker 0, whose
 * `U`, column order and dead-column flags are then shipped to the other
 * Workers (`U` in slices of at most 16 MiB, written straight into their wasm
 * memory). Each Worker then quantizes a contiguous block of W's rows (GPTQ
 * rows are independent given `U`). The result is bit-identical to
 * {@linkcode createWasmSolver}'s `gptq` (the loss, a sum over rows, may
 * differ in the last bits). `prepare` + `quantize` reuse one prepared
 * Hessian for several weights or Worker counts.
 *
 * The Hessian itself can live on Worker 0 ({@linkcode ParallelGptq.hessian}):
 * activations are posted there and accumulated in its wasm memory, prepared
 * there without a copy, and the report's error sums are computed there, so
 * the calling thread never holds a `K×K` array.
 *
 * @example Quantize one layer on two Workers
 * ```ts
 * import { createParallelGptq } from "./_solver_pool.ts";
 * const K = 64, N = 32;
 * const w = new Float32Array(N * K).map((_, i) => Math.sin(i));
 * const h = new Float32Array(K * K);
 * for (let i = 0; i < K; i++) h[i * K + i] = 1 + (i % 7);
 * using pool = await createParallelGptq(2);
 * const r = await pool.gptq(w, N, K, h, {
 *   bits: 4, group_size: 32, sym: true, desc_act: true, static_groups: false, damp_percent: 0.01,
 * });
 * console.log(r.G, r.codes.length); // 2 2048
 * ```
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { wasmModule } from "../wasm/mod.ts";
import type { GptqLayerResult, GptqSolveOptions } from "./solver.ts";
import { distPrepare, type DistSource } from "./_solver_dist.ts";
import { solveSettings } from "./_solve_settings.ts";
import type {
  PrepareReply,
  QuantizeReply,
  WorkerRequest,
  WorkerSolveOptions,
} from "./_solver_worker.ts";

/** Rows the wasm solver processes together; row blocks start at multiples of it. */
const ROW_TILE = 256;
/** Values of `U` per message when shipping it to the other Workers (16 MiB). */
const U_SLICE = 1 << 22;

/** Options of {@linkcode createParallelGptq}. */
export interface ParallelGptqOptions {
  /**
   * Smallest `K` whose `prepare` is split across the Workers (default 512);
   * smaller Hessians are prepared on Worker 0 and shipped. Either way the
   * prepared factor is bit-identical.
   */
  splitPrepareMinK?: number;
}

/** Where the time of one {@linkcode ParallelGptq.gptq} call went (seconds). */
export interface ParallelGptqTimings {
  /**
   * `prepare_hessian`: dead columns, damping, Cholesky, inverse — on Worker 0,
   * or split across the Workers (then including all transfers).
   */
  prepare: number;
  /** Exporting `U` and rebuilding it on the other Workers (0 with one Worker or a split prepare). */
  ship: number;
  /** `quantize_rows` (column loop + lazy updates) on each Worker used, by Worker. */
  quantize: number[];
  /** Wall time of the row phase: W out, all Workers' `quantize_rows`, results back. */
  columnLoop: number;
  /** Wall time of the call, transfers and assembly included. */
  total: number;
}

/** One quantized layer, with timings. */
export interface ParallelGptqResult extends GptqLayerResult {
  /** Where the time went. */
  timings: ParallelGptqTimings;
}

/**
 * A Hessian prepared on every Worker of a pool, from
 * {@linkcode ParallelGptq.prepare}; valid until the pool's next `prepare`,
 * `gptq` or `close`.
 */
export interface PreparedLayer {
  /** Input features. */
  readonly K: number;
  /** Groups. */
  readonly G: number;
  /** AutoGPTQ `g_idx` (`[K]`). */
  readonly gIdx: Int32Array;
  /** Damping used (after automatic increases). */
  readonly dampUsed: number;
  /** Columns with a zero Hessian diagonal. */
  readonly deadColumns: number;
  /** Seconds of `prepare_hessian` on Worker 0. */
  readonly prepareSeconds: number;
  /** Seconds exporting `U` and rebuilding it on the other Workers. */
  readonly shipSeconds: number;
}

/** Options of {@linkcode ParallelGptq.quantize}. */
export interface QuantizeRowsOptions {
  /** Workers to use (1 ≤ n ≤ pool size; default: all). */
  workers?: number;
  /** The tensor name, for error messages. */
  name?: string;
  /**
   * Only these rows of `Q` (ascending, distinct, `< N`) are returned: the
   * result's `q` is `[qRows.length, K]` and no full `[N, K]` `Q` is ever
   * allocated (codes, scales and zeros stay complete).
   */
  qRows?: readonly number[];
  /**
   * Hand `w`'s memory to the Workers instead of copying it: `w`'s buffer is
   * detached (unusable after the call), so the caller holds no `N×K` copy
   * while the Workers quantize.
   */
  transferW?: boolean;
}

/**
 * A Hessian accumulated in Worker 0's wasm memory, from
 * {@linkcode ParallelGptq.hessian}. Rows are added in the order `add` is
 * called, so `H` is bit-identical to a {@linkcode createWasmSolver}
 * accumulator fed the same rows.
 */
export interface PooledHessian {
  /** Input features. */
  readonly K: number;
  /**
   * Posts a copy of `x` (`[nSeq·tokens, K]`) to Worker 0 to be added.
   * Resolves once it is added; rejects with a `GptqError` (e.g. NaN input).
   *
   * @param x Activations (copied; not modified).
   * @param nSeq Sequences in `x`.
   * @param tokens Tokens per sequence.
   * @returns When the rows are added.
   */
  add(x: Float32Array, nSeq: number, tokens: number): Promise<void>;
  /**
   * Prepares the accumulated `H` on Worker 0 (it keeps `H`) and ships the
   * factor to the other Workers, like {@linkcode ParallelGptq.prepare}.
   * Later `add` calls are refused.
   *
   * @param opts Solver settings.
   * @param name The tensor name, for error messages.
   * @returns The prepared Hessian.
   */
  prepare(opts: GptqSolveOptions, name?: string): Promise<PreparedLayer>;
  /**
   * `Σ (D·H)∘D` for each of `parts` equal row blocks of `d` (`[m, K]`),
   * summed in f64 (`hessianErrorSums` of `./solver.ts`, on Worker 0).
   *
   * @param d Difference rows `W−Q`, `[m, K]` (transferred: unusable after).
   * @param m Rows of `d`.
   * @param parts Equal row blocks to sum separately.
   * @returns One sum per block.
   */
  errorSums(d: Float32Array, m: number, parts: number): Promise<Float64Array>;
  /**
   * Frees the accumulator on Worker 0.
   *
   * @returns When it is freed.
   */
  free(): Promise<void>;
}

/** A pool of solver Workers; close it (or `using` it) to terminate them. */
export interface ParallelGptq extends Disposable {
  /** Number of Workers. */
  readonly workers: number;
  /**
   * GPTQ-quantizes `w` (`[N, K]`) with Hessian `h` (`[K, K]`): `prepare`
   * then `quantize` on all Workers. Calls are queued, one at a time.
   *
   * @param w The weight, row-major `[N, K]` (not modified).
   * @param N Rows (output features).
   * @param K Columns (input features).
   * @param h The Hessian, `[K, K]` (not modified).
   * @param opts Solver settings.
   * @param name The tensor name, for error messages.
   * @returns The quantized layer and timings.
   */
  gptq(
    w: Float32Array,
    N: number,
    K: number,
    h: Float32Array,
    opts: GptqSolveOptions,
    name?: string,
  ): Promise<ParallelGptqResult>;
  /**
   * Prepares `h` once (Worker 0) and ships the factor to the other Workers;
   * several weights sharing one Hessian (or one weight quantized with
   * different Worker counts) can then be quantized without redoing the
   * `O(K³)` work.
   *
   * @param h The Hessian, `[K, K]` (not modified).
   * @param K Its size.
   * @param opts Solver settings (kept for the `quantize` calls).
   * @param name The tensor name, for error messages.
   * @returns The prepared Hessian.
   */
  prepare(
    h: Float32Array,
    K: number,
    opts: GptqSolveOptions,
    name?: string,
  ): Promise<PreparedLayer>;
  /**
   * Quantizes `w` (`[N, K]`) with the pool's current prepared Hessian, rows
   * split over the Workers.
   *
   * @param prepared The result of this pool's latest `prepare`.
   * @param w The weight, row-major `[N, K]` (not modified).
   * @param N Rows.
   * @param options Workers to use and the tensor name.
   * @returns The quantized layer and timings.
   */
  quantize(
    prepared: PreparedLayer,
    w: Float32Array,
    N: number,
    options?: QuantizeRowsOptions,
  ): Promise<ParallelGptqResult>;
  /**
   * A new zero Hessian for `K` inputs, accumulated on Worker 0.
   *
   * @param K Input features.
   * @returns The accumulator; `free()` it when done.
   */
  hessian(K: number): PooledHessian;
  /**
   * Drops the prepared Hessian on every Worker (freeing its wasm memory for
   * the next one).
   *
   * @returns When every Worker has dropped it.
   */
  release(): Promise<void>;
  /** Terminates the Workers; later calls throw. */
  close(): void;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { name: string; message: string };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

class SolverWorker {
  #worker: Worker;
  #next = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #dead: unknown;

  constructor() {
    this.#worker = new Worker(new URL("./_solver_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<Reply>) => {
      const r = e.data, p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      if (r.ok) p.resolve(r.result);
      else p.reject(Object.assign(new Error(r.error!.message), { name: r.error!.name }));
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fail(
        new GptqError("WASM", `a solver Worker crashed: ${e.message}`, {
          hint: "this is a bug or an out-of-memory condition; retry with fewer Workers",
        }),
      );
    };
  }

  #fail(err: unknown): void {
    this.#dead ??= err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  call<T>(req: DistributiveOmit<WorkerRequest, "id">, transfer: Transferable[] = []): Promise<T> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ ...req, id }, transfer);
    });
  }

  terminate(): void {
    this.#worker.terminate();
    this.#fail(new GptqError("INVALID_ARGUMENT", "the solver pool is closed"));
  }
}

function checkArgs(
  w: Float32Array,
  N: number,
  K: number,
  h: Float32Array,
  o: GptqSolveOptions,
  name: string | undefined,
): void {
  checkOpts(o, name);
  if (
    !Number.isSafeInteger(N) || !Number.isSafeInteger(K) || N < 1 || K < 1 ||
    w.length !== N * K || h.length !== K * K
  ) {
    throw new GptqError(
      "SHAPE",
      `gptq: W has ${w.length} values (N·K = ${N * K}), H has ${h.length} (K² = ${K * K})`,
      {
        ...(name ? { tensor: name } : {}),
        hint: "W must be [N, K] (out × in features) and H must be [K, K]",
      },
    );
  }
}

function checkOpts(o: GptqSolveOptions, name: string | undefined): void {
  const ctx = name ? { tensor: name } : {};
  if (![2, 3, 4, 8].includes(o.bits)) {
    throw new GptqError("INVALID_ARGUMENT", `bits must be 2, 3, 4 or 8, got ${o.bits}`, ctx);
  }
  if (!(o.group_size === -1 || (Number.isInteger(o.group_size) && o.group_size > 0))) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `group_size must be -1 or a positive integer, got ${o.group_size}`,
      ctx,
    );
  }
  if (!(o.damp_percent > 0 && o.damp_percent < 1)) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `damp_percent must be in (0, 1), got ${o.damp_percent}`,
      ctx,
    );
  }
}

function wrapError(e: unknown, name: string | undefined): never {
  if (e instanceof GptqError) throw e;
  const msg = e instanceof Error ? e.message : String(e);
  throw new GptqError("HESSIAN", msg, {
    ...(name ? { tensor: name } : {}),
    hint: /cholesky|positive/i.test(msg)
      ? "raise --damp-percent or use more calibration samples"
      : "check the calibration data and the model weights for NaN/Inf",
    cause: e,
  });
}

/**
 * Row blocks for `parts` Workers: contiguous, starting at multiples of the
 * solver's row tile when that still gives every Worker rows.
 */
function splitRows(N: number, parts: number): number[] {
  const tile = N >= parts * ROW_TILE ? ROW_TILE : 1;
  const tiles = Math.ceil(N / tile);
  const used = Math.min(parts, tiles);
  const bounds = [0];
  for (let i = 1; i < used; i++) bounds.push(Math.min(N, Math.round((tiles * i) / used) * tile));
  bounds.push(N);
  return bounds;
}

/**
 * Starts `workers` solver Workers, each with its own instance of the wasm
 * module (compiled once here and posted to them).
 *
 * @example
 * ```ts
 * import { createParallelGptq } from "./_solver_pool.ts";
 * const pool = await createParallelGptq(2);
 * try {
 *   const K = 32, N = 8, h = new Float32Array(K * K);
 *   for (let i = 0; i < K; i++) h[i * K + i] = 1;
 *   const r = await pool.gptq(new Float32Array(N * K).fill(0.25), N, K, h, {
 *     bits: 4, group_size: -1, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01,
 *   });
 *   console.log(r.timings.prepare >= 0); // true
 * } finally {
 *   pool.close();
 * }
 * ```
 *
 * @param workers Number of Workers (default 2).
 * @param options When `prepare` is split across the Workers.
 * @returns The pool; `close()` it when done.
 */
export async function createParallelGptq(
  workers = 2,
  options: ParallelGptqOptions = {},
): Promise<ParallelGptq> {
  const splitMinK = options.splitPrepareMinK ?? 512;
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new GptqError("INVALID_ARGUMENT", `workers must be an integer in 1..64, got ${workers}`, {
      hint: "use 1 or 2 Workers per solver, or one per CPU core",
    });
  }
  const module = await wasmModule();
  const pool: SolverWorker[] = [];
  try {
    for (let i = 0; i < workers; i++) pool.push(new SolverWorker());
    await Promise.all(pool.map((w) => w.call({ type: "init", module })));
  } catch (e) {
    for (const w of pool) w.terminate();
    throw e instanceof GptqError ? e : new GptqError(
      "WASM",
      `cannot start the solver Workers: ${e instanceof Error ? e.message : e}`,
      { hint: "Workers need the same permissions as the main module", cause: e },
    );
  }
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  let current: PreparedLayer | undefined;

  const enqueue = <T>(f: () => Promise<T>, name: string | undefined): Promise<T> => {
    if (closed) {
      return Promise.reject(
        new GptqError("INVALID_ARGUMENT", "the solver pool is closed", {
          ...(name ? { tensor: name } : {}),
          hint: "create a new pool with createParallelGptq()",
        }),
      );
    }
    const p = queue.then(f).catch((e) => wrapError(e, name));
    queue = p.catch(() => {});
    return p;
  };

  /**
   * After Worker 0 prepared a Hessian: copies its factor `U` to the other
   * Workers slice by slice (straight into their wasm memory; at most two
   * slices in flight), then has them rebuild the prepared Hessian.
   */
  async function finishPrepare(
    prep: PrepareReply,
    K: number,
    opts: WorkerSolveOptions,
  ): Promise<PreparedLayer> {
    const t1 = performance.now();
    if (pool.length > 1) {
      const others = pool.slice(1), total = K * K;
      await Promise.all(others.map((w) => w.call({ type: "uBegin", len: total })));
      const step = Math.max(1, Math.floor(U_SLICE / K)) * K;
      let writing: Promise<unknown> = Promise.resolve();
      for (let off = 0; off < total; off += step) {
        const len = Math.min(step, total - off);
        const u = await pool[0]!.call<Float32Array>({ type: "uRange", offset: off, len });
        await writing; // the previous slice is written: at most two slices alive
        writing = Promise.all(others.map((w, i) => {
          const c = i === others.length - 1 ? u : u.slice();
          return w.call({ type: "uWrite", offset: off, u: c }, [c.buffer as ArrayBuffer]);
        }));
      }
      await writing;
      await Promise.all(others.map((w) => {
        const perm = prep.perm!.slice(), dead = prep.dead!.slice();
        return w.call(
          { type: "fromUBuffer", perm, dead, dampUsed: prep.dampUsed, K, opts },
          [perm.buffer, dead.buffer],
        );
      }));
    }
    current = {
      K,
      G: prep.G,
      gIdx: prep.gIdx,
      dampUsed: prep.dampUsed,
      deadColumns: prep.deadColumns,
      prepareSeconds: prep.prepareSeconds,
      shipSeconds: pool.length > 1 ? (performance.now() - t1) / 1000 : 0,
    };
    return current;
  }

  /** Prepares on all Workers at once (bit-identical to Worker 0 + shipping). */
  async function prepareSplit(
    K: number,
    opts: WorkerSolveOptions,
    source: DistSource,
  ): Promise<PreparedLayer> {
    const prep = await distPrepare(pool, K, opts, source);
    current = {
      K,
      G: prep.G,
      gIdx: prep.gIdx,
      dampUsed: prep.dampUsed,
      deadColumns: prep.deadColumns,
      prepareSeconds: prep.prepareSeconds,
      shipSeconds: 0,
    };
    return current;
  }

  const split = (K: number) => pool.length > 1 && K >= splitMinK;

  async function prepare(
    h: Float32Array,
    K: number,
    o: GptqSolveOptions,
  ): Promise<PreparedLayer> {
    current = undefined;
    const opts = solveSettings(o);
    const hCopy = h.slice();
    if (split(K)) return await prepareSplit(K, opts, { h: hCopy });
    const prep = await pool[0]!.call<PrepareReply>(
      { type: "prepare", h: hCopy, K, opts, parts: pool.length > 1 },
      [hCopy.buffer],
    );
    return await finishPrepare(prep, K, opts);
  }

  async function prepareAcc(acc: number, K: number, o: GptqSolveOptions): Promise<PreparedLayer> {
    current = undefined;
    const opts = solveSettings(o);
    if (split(K)) return await prepareSplit(K, opts, { acc });
    const prep = await pool[0]!.call<PrepareReply>(
      { type: "accPrepare", acc, opts, parts: pool.length > 1 },
    );
    return await finishPrepare(prep, K, opts);
  }

  let nextAcc = 0;
  function hessian(K: number): PooledHessian {
    if (!Number.isSafeInteger(K) || K < 1) {
      throw new GptqError("SHAPE", `hessian: K must be a positive integer, got ${K}`);
    }
    if (closed) {
      throw new GptqError("INVALID_ARGUMENT", "the solver pool is closed", {
        hint: "create a new pool with createParallelGptq()",
      });
    }
    const acc = nextAcc++, w0 = pool[0]!;
    let sealed = false, freed = false;
    // Posted at once (not queued): Worker 0 handles its messages in order,
    // so every add reaches the accumulator before a later prepare.
    const created = w0.call({ type: "accNew", acc, K });
    created.catch(() => {}); // reported by the calls that follow
    const refuse = (what: string): Promise<never> =>
      Promise.reject(
        new GptqError("INVALID_ARGUMENT", `hessian: ${what}`, {
          hint: "create a new accumulator with pool.hessian(K)",
        }),
      );
    return {
      K,
      add(x, nSeq, tokens) {
        if (freed || sealed) return refuse(freed ? "add after free()" : "add after prepare()");
        if (
          !Number.isSafeInteger(nSeq) || !Number.isSafeInteger(tokens) || nSeq < 1 ||
          tokens < 1 || x.length !== nSeq * tokens * K
        ) {
          return Promise.reject(
            new GptqError(
              "SHAPE",
              `Hessian input has ${x.length} values, expected ${nSeq}×${tokens}×${K}`,
            ),
          );
        }
        const copy = x.slice();
        return w0.call<unknown>(
          { type: "accAdd", acc, x: copy, nSeq, tokens },
          [copy.buffer],
        ).then(() => {}, (e) => wrapError(e, undefined));
      },
      prepare(o, name) {
        if (freed) return refuse("prepare after free()");
        try {
          checkOpts(o, name);
        } catch (e) {
          return Promise.reject(e);
        }
        sealed = true;
        return enqueue(() => prepareAcc(acc, K, o), name);
      },
      errorSums(d, m, parts) {
        if (freed) return refuse("errorSums after free()");
        return w0.call<Float64Array>(
          { type: "accErrors", acc, d, m, parts },
          [d.buffer as ArrayBuffer],
        ).catch((e) => wrapError(e, undefined));
      },
      free() {
        if (freed || closed) return Promise.resolve();
        freed = true;
        return w0.call<unknown>({ type: "accFree", acc }).then(() => {});
      },
    };
  }

  async function quantize(
    prepared: PreparedLayer,
    w: Float32Array,
    N: number,
    nWorkers: number,
    qRows: readonly number[] | undefined,
    transferW = false,
  ): Promise<ParallelGptqResult> {
    const t0 = performance.now();
    const { K, G } = prepared;
    const bounds = splitRows(N, nWorkers);
    const used = bounds.length - 1;
    const jobs: Promise<QuantizeReply>[] = [];
    // With transferW, Worker 0's rows keep w's own buffer (shrunk in place
    // by ArrayBuffer.transfer after the other parts are copied out).
    const own = transferW && w.buffer instanceof ArrayBuffer && !w.buffer.detached &&
      w.byteOffset === 0 && w.byteLength === w.buffer.byteLength;
    const wParts = bounds.slice(1, used).map((r0, i) => w.slice(r0 * K, bounds[i + 2]! * K));
    const w0 = own
      ? new Float32Array((w.buffer as ArrayBuffer).transfer(bounds[1]! * K * 4))
      : w.slice(0, bounds[1]! * K);
    wParts.unshift(w0);
    for (let i = 0; i < used; i++) {
      const r0 = bounds[i]!, r1 = bounds[i + 1]!;
      const wi = wParts[i]!;
      const mine = qRows?.filter((r) => r >= r0 && r < r1).map((r) => r - r0);
      jobs.push(pool[i]!.call<QuantizeReply>(
        { type: "quantize", w: wi, rows: r1 - r0, ...(mine ? { qRows: mine } : {}) },
        [wi.buffer],
      ));
    }
    const parts = await Promise.all(jobs);
    const tDone = performance.now();
    let q: Float32Array, codes: Uint8Array, scale: Float32Array, zero: Float32Array;
    let loss = 0;
    if (used === 1) {
      ({ q, codes, scale, zero, loss } = parts[0]!);
    } else {
      // Row blocks are in order, so each part's (selected) Q rows follow the previous ones.
      q = new Float32Array(parts.reduce((a, p) => a + p.q.length, 0));
      codes = new Uint8Array(N * K);
      scale = new Float32Array(N * G);
      zero = new Float32Array(N * G);
      let qo = 0;
      parts.forEach((p, i) => {
        const r0 = bounds[i]!;
        q.set(p.q, qo);
        qo += p.q.length;
        codes.set(p.codes, r0 * K);
        scale.set(p.scale, r0 * G);
        zero.set(p.zero, r0 * G);
        loss += p.loss;
        for (const a of [p.q, p.codes, p.scale, p.zero]) {
          if (a.buffer instanceof ArrayBuffer) a.buffer.transfer(0); // copied: free it now
        }
      });
    }
    return {
      q,
      codes,
      scale,
      zero,
      gIdx: prepared.gIdx.slice(),
      G,
      loss,
      dampUsed: prepared.dampUsed,
      deadColumns: prepared.deadColumns,
      timings: {
        prepare: prepared.prepareSeconds,
        ship: prepared.shipSeconds,
        quantize: parts.map((p) => p.seconds),
        columnLoop: (tDone - t0) / 1000,
        total: (performance.now() - t0) / 1000,
      },
    };
  }

  const api: ParallelGptq = {
    workers,
    gptq(w, N, K, h, opts, name) {
      try {
        checkArgs(w, N, K, h, opts, name);
      } catch (e) {
        return Promise.reject(e);
      }
      return enqueue(async () => {
        const t0 = performance.now();
        const prepared = await prepare(h, K, opts);
        const r = await quantize(prepared, w, N, pool.length, undefined);
        r.timings.total = (performance.now() - t0) / 1000;
        return r;
      }, name);
    },
    prepare(h, K, opts, name) {
      try {
        checkArgs(new Float32Array(K), 1, K, h, opts, name);
      } catch (e) {
        return Promise.reject(e);
      }
      return enqueue(() => prepare(h, K, opts), name);
    },
    quantize(prepared, w, N, options = {}) {
      const { name, qRows, transferW } = options;
      const n = options.workers ?? pool.length;
      const ctx = name ? { tensor: name } : {};
      if (!Number.isInteger(n) || n < 1 || n > pool.length) {
        return Promise.reject(
          new GptqError(
            "INVALID_ARGUMENT",
            `workers must be an integer in 1..${pool.length}, got ${n}`,
            ctx,
          ),
        );
      }
      if (!Number.isSafeInteger(N) || N < 1 || w.length !== N * prepared.K) {
        return Promise.reject(
          new GptqError(
            "SHAPE",
            `quantize: W has ${w.length} values, expected N·K = ${N}·${prepared.K}`,
            { ...ctx, hint: "W must be [N, K] with K the size of the prepared Hessian" },
          ),
        );
      }
      if (
        qRows &&
        !qRows.every((r, i) =>
          Number.isInteger(r) && r >= 0 && r < N && (i === 0 || r > qRows[i - 1]!)
        )
      ) {
        return Promise.reject(
          new GptqError(
            "INVALID_ARGUMENT",
            "quantize: qRows must be ascending distinct rows < N",
            ctx,
          ),
        );
      }
      return enqueue(() => {
        if (prepared !== current) {
          throw new GptqError(
            "INVALID_ARGUMENT",
            "quantize: this prepared Hessian was replaced by a later prepare/gptq call, or released",
            { ...ctx, hint: "quantize with a pool's latest prepare() result" },
          );
        }
        return quantize(prepared, w, N, n, qRows, transferW);
      }, name);
    },
    hessian,
    release() {
      if (closed) return Promise.resolve();
      return enqueue(async () => {
        current = undefined;
        await Promise.all(pool.map((w) => w.call({ type: "free" })));
      }, undefined);
    },
    close() {
      if (closed) return;
      closed = true;
      current = undefined;
      for (const w of pool) w.terminate();
    },
    [Symbol.dispose]() {
      api.close();
    },
  };
  return api;
}
