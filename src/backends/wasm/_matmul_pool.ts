// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Multi-core linear layers: a pool of Workers, one wasm instance each, where
 * every Worker holds a contiguous slice of the output rows of each weight.
 * A call posts `x` to every Worker, each computes `y[:, n0..n1]` with the
 * same SIMD128 kernel as the single-thread backend, and the slices are
 * stitched into `[M, N]`. Row splits do not change any output element's
 * arithmetic, so the result equals the single-thread wasm matmul bit for bit.
 *
 * Workers are asynchronous while {@linkcode Kernels} is synchronous, so the
 * pool has its own async API; the runtime does not use it yet.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import { toFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import { wasmModule } from "../../wasm/mod.ts";
import type { LinearHandle } from "../backend.ts";

/** Storage dtypes a Worker keeps weights in. */
export type StoreDType = "F32" | "F16" | "BF16";

/** Messages to a Worker (internal protocol). */
export type WorkerRequest =
  | { op: "init"; id: number; module: WebAssembly.Module }
  | {
    op: "load";
    id: number;
    handle: number;
    dtype: StoreDType;
    /** Rows n0..n1 of `[N, K]`, or all of `[K, N]` when transposed. */
    data: ArrayBuffer;
    K: number;
    N: number;
    n0: number;
    n1: number;
    transposed: boolean;
    bias: Float32Array | null;
  }
  | { op: "matmul"; id: number; handle: number; x: Float32Array; m: number }
  | { op: "release"; id: number; handle: number };

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;
type Request = WithoutId<WorkerRequest>;

/** Replies from a Worker (internal protocol). */
export type WorkerReply =
  | { id: number; ok: true; y?: Float32Array; bytes?: number }
  | { id: number; ok: false; message: string };

/** Options of {@linkcode MatmulPool.create}. */
export interface MatmulPoolOptions {
  /** Number of Workers (default `navigator.hardwareConcurrency`, or 2). */
  workers?: number;
  /** A compiled module to share (default: the embedded one, compiled once). */
  module?: WebAssembly.Module;
}

/** A linear layer whose rows are spread over the pool's Workers. */
export interface ParallelLinear extends LinearHandle {
  /** Storage dtype in the Workers. */
  readonly dtype: StoreDType;
  /** Row boundaries: Worker `i` holds rows `splits[i]..splits[i + 1]`. */
  readonly splits: readonly number[];
  /** Tensor name, for error messages. */
  readonly name: string | undefined;
}

interface PoolLinear extends ParallelLinear {
  handle: number;
  released: boolean;
}

interface Pending {
  resolve: (r: WorkerReply & { ok: true }) => void;
  reject: (e: unknown) => void;
}

class PoolWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  #next = 0;
  dead: string | null = null;

  constructor(url: URL) {
    this.worker = new Worker(url, { type: "module" });
    this.worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const r = e.data;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r);
      else p.reject(new Error(r.message));
    };
    this.worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.fail(`worker crashed: ${e.message}`);
    };
  }

  fail(why: string): void {
    this.dead = why;
    for (const p of this.pending.values()) p.reject(new Error(why));
    this.pending.clear();
  }

  call(
    req: Request,
    transfer: Transferable[] = [],
  ): Promise<WorkerReply & { ok: true }> {
    if (this.dead) return Promise.reject(new Error(this.dead));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id } as WorkerRequest, transfer);
    });
  }
}

const WORKER_URL = new URL("./_matmul_worker.ts", import.meta.url);
/** Row splits are rounded to this many rows (the kernel's widest row tile). */
const ROW_ALIGN = 8;

function poolError(reason: string, name: string | undefined, cause?: unknown): GptqError {
  return new GptqError("WASM", reason, {
    tensor: name,
    hint: "the worker's wasm kernel rejected the call; check the shapes, or use the " +
      "single-thread wasm backend",
    cause,
  });
}

/**
 * Splits `N` rows into `parts` contiguous ranges whose boundaries are
 * multiples of 8 (empty ranges allowed when N is small).
 *
 * @example
 * ```ts
 * import { splitRows } from "./_matmul_pool.ts";
 * console.log(splitRows(100, 2)); // [0, 48, 100]
 * ```
 *
 * @param N Rows.
 * @param parts Number of ranges.
 * @returns `parts + 1` boundaries from 0 to N.
 */
export function splitRows(N: number, parts: number): number[] {
  const s = [0];
  for (let i = 1; i < parts; i++) {
    const b = Math.round((N * i) / parts / ROW_ALIGN) * ROW_ALIGN;
    s.push(Math.min(N, Math.max(s[i - 1]!, b)));
  }
  s.push(N);
  return s;
}

/**
 * A pool of Workers computing linear layers together (see the module doc).
 *
 * @example
 * ```ts ignore
 * import { MatmulPool } from "./_matmul_pool.ts";
 * using pool = await MatmulPool.create({ workers: 2 });
 * const w = await pool.load({ dtype: "F32", shape: [2, 2], data: new Uint8Array(new Float32Array([1, 0, 0, 2]).buffer) });
 * console.log(await pool.linear(new Float32Array([3, 4]), 1, w)); // Float32Array [3, 8]
 * ```
 */
export class MatmulPool implements Disposable {
  readonly #workers: PoolWorker[];
  #nextHandle = 0;
  #closed = false;

  private constructor(workers: PoolWorker[]) {
    this.#workers = workers;
  }

  /**
   * Starts the Workers and instantiates the wasm module in each (needs
   * permission to read the module files, e.g. `-A`).
   *
   * @example
   * ```ts ignore
   * import { MatmulPool } from "./_matmul_pool.ts";
   * const pool = await MatmulPool.create();
   * console.log(pool.size);
   * pool.close();
   * ```
   *
   * @param opts Worker count and module.
   * @returns The ready pool.
   */
  static async create(opts: MatmulPoolOptions = {}): Promise<MatmulPool> {
    const n = opts.workers ?? (globalThis.navigator?.hardwareConcurrency || 2);
    if (!Number.isInteger(n) || n < 1) {
      throw new GptqError("INVALID_ARGUMENT", `worker count must be a positive integer, got ${n}`, {
        hint: "pass workers: 1 or more",
      });
    }
    const module = opts.module ?? await wasmModule();
    const workers: PoolWorker[] = [];
    try {
      for (let i = 0; i < n; i++) workers.push(new PoolWorker(WORKER_URL));
      await Promise.all(workers.map((w) => w.call({ op: "init", module })));
    } catch (e) {
      for (const w of workers) w.worker.terminate();
      throw new GptqError("WASM", `cannot start the matmul workers: ${errText(e)}`, {
        hint: "Workers need permission to read the toolkit's files (run with -A or --allow-read)",
        cause: e,
      });
    }
    return new MatmulPool(workers);
  }

  /** Number of Workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Loads a dense weight `[N, K]` (or `[K, N]` when `transposed`, GPT-2
   * Conv1D), giving each Worker its slice of rows. F16/BF16 stay 16-bit;
   * other float dtypes are widened to f32.
   *
   * @example
   * ```ts ignore
   * const h = await pool.load(await file.read("model.layers.0.mlp.up_proj.weight"));
   * ```
   *
   * @param w The weight.
   * @param bias Optional bias `[N]`.
   * @param transposed Whether `w` is stored `[K, N]`.
   * @param name Tensor name, for error messages.
   * @returns The handle.
   */
  async load(
    w: RawTensor,
    bias: Float32Array | null = null,
    transposed = false,
    name?: string,
  ): Promise<ParallelLinear> {
    this.#checkOpen();
    if (w.shape.length !== 2) {
      throw new GptqError("SHAPE", `a linear weight must be 2-D, got shape [${w.shape}]`, {
        tensor: name,
        hint: "pass a [out_features, in_features] tensor",
      });
    }
    const [a, b] = w.shape as [number, number];
    const N = transposed ? b : a, K = transposed ? a : b;
    if (bias && bias.length !== N) {
      throw new GptqError("SHAPE", `bias has ${bias.length} values for ${N} output features`, {
        tensor: name,
        hint: "the bias must have one value per output row",
      });
    }
    let dtype: StoreDType, bytes: Uint8Array;
    if (w.dtype === "F16" || w.dtype === "BF16" || w.dtype === "F32") {
      dtype = w.dtype;
      bytes = w.data;
    } else {
      dtype = "F32";
      const f = toFloat32(w.data, w.dtype);
      bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    }
    const size = dtype === "F32" ? 4 : 2;
    if (bytes.byteLength !== N * K * size) {
      throw new GptqError(
        "SHAPE",
        `weight holds ${bytes.byteLength} bytes but shape [${w.shape}] of ${w.dtype} needs ${
          N * K * size
        }`,
        { tensor: name, hint: "the tensor's data does not match its shape" },
      );
    }
    const splits = splitRows(N, this.#workers.length);
    const handle = this.#nextHandle++;
    let total = 0;
    try {
      const replies = await Promise.all(this.#workers.map((wk, i) => {
        const n0 = splits[i]!, n1 = splits[i + 1]!;
        if (n0 === n1) return null;
        const data = transposed
          ? bytes.slice().buffer
          : bytes.slice(n0 * K * size, n1 * K * size).buffer;
        return wk.call({
          op: "load",
          handle,
          dtype,
          data,
          K,
          N,
          n0,
          n1,
          transposed,
          bias: bias ? bias.slice(n0, n1) : null,
        }, [data]);
      }));
      for (const r of replies) total += r?.bytes ?? 0;
    } catch (e) {
      await this.#releaseHandle(handle, splits).catch(() => {});
      throw poolError(`cannot load the weight into the workers: ${errText(e)}`, name, e);
    }
    const l: PoolLinear = { N, K, bytes: total, dtype, splits, name, handle, released: false };
    return l;
  }

  /**
   * `y[M, N] = x[M, K] · Wᵀ + b`, every Worker computing its rows.
   *
   * @example
   * ```ts ignore
   * const y = await pool.linear(x, 1, h); // [1, N]
   * ```
   *
   * @param x Input `[M, K]` (not modified).
   * @param M Rows of x.
   * @param h A handle from {@linkcode MatmulPool.load}.
   * @returns The output `[M, N]`.
   */
  async linear(x: Float32Array, M: number, h: ParallelLinear): Promise<Float32Array> {
    this.#checkOpen();
    const l = h as PoolLinear;
    if (l.released) {
      throw new GptqError("INVALID_ARGUMENT", "linear used after release", { tensor: l.name });
    }
    const { N, K, splits } = l;
    if (!Number.isInteger(M) || M < 0 || x.length < M * K) {
      throw new GptqError(
        "SHAPE",
        `input has ${x.length} values, ${M} rows of ${K} need ${M * K}`,
        { tensor: l.name, hint: "x must be [M, in_features] row-major" },
      );
    }
    const xs = x.length === M * K ? x : x.subarray(0, M * K);
    let parts: (Float32Array | null)[];
    try {
      parts = await Promise.all(this.#workers.map(async (wk, i) => {
        if (splits[i] === splits[i + 1]) return null;
        const r = await wk.call({ op: "matmul", handle: l.handle, x: xs, m: M });
        return r.y!;
      }));
    } catch (e) {
      throw poolError(`parallel matmul failed: ${errText(e)}`, l.name, e);
    }
    const y = new Float32Array(M * N);
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (!p) continue;
      const n0 = splits[i]!, nw = splits[i + 1]! - n0;
      if (M === 1 || nw === N) {
        y.set(p, n0);
        continue;
      }
      for (let m = 0; m < M; m++) y.set(p.subarray(m * nw, (m + 1) * nw), m * N + n0);
    }
    return y;
  }

  /**
   * Frees a linear's memory in every Worker.
   *
   * @example
   * ```ts ignore
   * await pool.release(h);
   * ```
   *
   * @param h The handle.
   * @returns Resolves once every Worker has freed it.
   */
  async release(h: ParallelLinear): Promise<void> {
    const l = h as PoolLinear;
    if (l.released || this.#closed) return;
    l.released = true;
    await this.#releaseHandle(l.handle, l.splits);
  }

  /**
   * Terminates the Workers (pending calls reject).
   *
   * @example
   * ```ts ignore
   * pool.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) {
      w.worker.terminate();
      w.fail("the matmul pool was closed");
    }
  }

  /** Same as {@linkcode MatmulPool.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  async #releaseHandle(handle: number, splits: readonly number[]): Promise<void> {
    await Promise.all(
      this.#workers.map((w, i) =>
        splits[i] === splits[i + 1] ? null : w.call({ op: "release", handle })
      ),
    );
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new GptqError("INVALID_ARGUMENT", "the matmul pool is closed", {
        hint: "create a new pool with MatmulPool.create()",
      });
    }
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
