// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * More cores for the synchronous wasm backend: a helper Worker that holds
 * one contiguous part of the output rows of every large linear and computes
 * it while the calling thread computes the first part (the backend starts
 * one per extra thread).
 *
 * {@linkcode Kernels} is synchronous, so nothing here awaits. The two threads
 * talk through shared memory: a control block (`Int32Array` on a
 * `SharedArrayBuffer`) carries a command sequence number, an opcode and its
 * arguments; the caller `Atomics.notify`s the Worker, which sleeps in
 * `Atomics.wait` between commands, and later `Atomics.wait`s for the Worker's
 * completion number. Activations go through two shared regions (x in, the
 * Worker's y half out). Bulky one-off payloads (weight slices, larger shared
 * regions, error texts) travel over a `MessageChannel` and are read
 * synchronously with `receiveMessageOnPort`.
 *
 * The Worker (`node:worker_threads`, unref'd so that it never keeps the
 * process alive) is started synchronously, ready in tens of milliseconds;
 * the wasm backend closes it ({@linkcode SyncWorker.close}) when its last
 * split linear is released or on `dispose()`.
 *
 * @module
 */

import { receiveMessageOnPort, Worker as NodeWorker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { GptqError } from "../../errors.ts";
import { toFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import type { QuantLinearTensors } from "../../gptq/quant_linear.ts";

/** Storage dtypes the helper Worker keeps weights in. */
export type HalfDType = "F32" | "F16" | "BF16";

/** Control block slots (Int32 indices). */
export const CTL = {
  /** Sequence number of the latest command (caller → Worker). */
  CMD: 0,
  /** Sequence number of the latest finished command (Worker → caller). */
  DONE: 1,
  /** Opcode of the latest command. */
  OP: 2,
  /** Weight handle the command is about. */
  HANDLE: 3,
  /** Rows of x (LINEAR). */
  M: 4,
  /** 0 = ok, 1 = failed (an error message waits on the port). */
  STATUS: 5,
  /** 0 = starting, 1 = ready, 2 = failed to start (message on the port). */
  READY: 6,
  /** ATTENTION: query heads. */
  HQ: 8,
  /** ATTENTION: KV heads. */
  HKV: 9,
  /** ATTENTION: head dimension. */
  D: 10,
  /** ATTENTION: cached positions before the Worker's first query row. */
  PAST: 11,
  /** Slots in use (the last one is the Worker's nap word). */
  SIZE: 16,
} as const;

/** Opcodes. */
export const OP = {
  /** `y_half[M, rows] = x[M, K] · W_halfᵀ (+ b)` for weight HANDLE. */
  LINEAR: 1,
  /** Read one {@linkcode PortMessage} from the port and act on it. */
  MESSAGE: 2,
  /** Free weight HANDLE. */
  RELEASE: 3,
  /** Leave the command loop. */
  EXIT: 4,
  /**
   * Causal attention of M query rows: x holds `q [M, HQ·D]`, then the key
   * and value caches `[PAST + M, HKV·D]` each; y gets `[M, HQ·D]`.
   */
  ATTENTION: 5,
} as const;

/** Messages on the port, caller → Worker (internal protocol). */
export type PortMessage =
  | {
    op: "load";
    handle: number;
    dtype: HalfDType;
    /** `[rows, K]` row-major, or `[K, rows]` when `transposed`. */
    data: ArrayBuffer;
    rows: number;
    K: number;
    transposed: boolean;
    bias: Float32Array | null;
  }
  | ({ op: "loadGptq"; handle: number } & GptqHalf)
  | { op: "buffers"; x: SharedArrayBuffer; y: SharedArrayBuffer };

/** The first message to the Worker (internal protocol). */
export interface InitMessage {
  /** The control block. */
  ctl: SharedArrayBuffer;
  /** The Worker's end of the channel. */
  port: MessagePort;
  /** The compiled gptq wasm module. */
  module: WebAssembly.Module;
}

/** Counters for tests and benchmarks (process-wide). */
export const SYNC_POOL_STATS: {
  started: number;
  closed: number;
  linearCalls: number;
  attentionCalls: number;
} = {
  started: 0,
  closed: 0,
  linearCalls: 0,
  attentionCalls: 0,
};

/** Options of {@linkcode SyncWorker.start}. */
export interface SyncWorkerOptions {
  /** How long to wait for the Worker to become ready (default 30 s). */
  startTimeoutMs?: number;
}

/** A weight half to hand to the Worker (see {@linkcode sliceHalf}). */
export interface HalfWeight {
  /** Storage dtype. */
  dtype: HalfDType;
  /** The bytes (owned: transferred to the Worker). */
  data: ArrayBuffer;
  /** Output rows in the half. */
  rows: number;
  /** Input features. */
  K: number;
  /** Whether `data` is `[K, rows]`. */
  transposed: boolean;
  /** Bias of the half, or null. */
  bias: Float32Array | null;
}

/**
 * Output columns of a GPTQ linear to hand to the Worker (see
 * {@linkcode sliceGptqHalf}): still packed; the Worker builds the fused
 * kernel's layout from it (`WeightBuf.from_gptq`).
 */
export interface GptqHalf {
  /** `[K·bits/32, N]` packed codes of the half's `N` columns (owned). */
  qweight: Int32Array;
  /** `[G, N·bits/32]` packed zeros (owned). */
  qzeros: Int32Array;
  /** `[G, N]` f16 scale bits (owned). */
  scales: Uint16Array;
  /** `[K]` group per input row, or empty for `k / (K/G)` (owned). */
  gIdx: Int32Array;
  /** Input features. */
  K: number;
  /** Output columns in the half. */
  N: number;
  /** Bit width. */
  bits: number;
  /** Whether zeros are stored as is ("gptq_v2") rather than `zero − 1`. */
  v2: boolean;
  /** Act-order handling: 0 auto, 1 reorder, 2 gather. */
  mode: number;
  /** Activation precision: 0 f32 (exact), 1 int8 per 32 values. */
  act: number;
  /** Bias of the half, or null. */
  bias: Float32Array | null;
}

const WORKER_URL = new URL("./_sync_worker.ts", import.meta.url);
/** A command the Worker has not finished after this long is treated as a hang. */
const STUCK_MS = 10 * 60 * 1000;
const HINT = "run with createWasmKernels({ threads: 1 }) to avoid the helper Worker";

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Why the helper Worker cannot be started in this process, or null when it can
 * (it needs permission to read its own module file, or to fetch it).
 *
 * @example
 * ```ts
 * import { helperUnavailable } from "./_sync_pool.ts";
 * console.log(helperUnavailable() ?? "the helper Worker can start");
 * ```
 *
 * @returns A reason, or null.
 */
export function helperUnavailable(): string | null {
  if (typeof SharedArrayBuffer !== "function") {
    return "this runtime has no SharedArrayBuffer";
  }
  try {
    const state = WORKER_URL.protocol === "file:"
      ? Deno.permissions.querySync({ name: "read", path: fileURLToPath(WORKER_URL) }).state
      : Deno.permissions.querySync({ name: "net", host: WORKER_URL.host }).state;
    if (state !== "granted") {
      return `no permission to load ${WORKER_URL.href} (grant --allow-read, or run with -A)`;
    }
  } catch (e) {
    return `cannot check permissions: ${errText(e)}`;
  }
  return null;
}

/**
 * Copies output rows `n0..n1` of a dense weight into a new buffer for the
 * Worker: F16/BF16/F32 keep their dtype, other float dtypes become F32. A
 * transposed (`[K, N]`, GPT-2 Conv1D) weight gives a compact `[K, n1-n0]`.
 *
 * @example
 * ```ts
 * import { sliceHalf } from "./_sync_pool.ts";
 * const w = new Float32Array([1, 2, 3, 4, 5, 6]); // [3, 2]
 * const h = sliceHalf({ dtype: "F32", shape: [3, 2], data: new Uint8Array(w.buffer) }, null, false, 1, 3);
 * console.log(new Float32Array(h.data)); // Float32Array [3, 4, 5, 6]
 * ```
 *
 * @param w The full weight.
 * @param bias The full bias, or null.
 * @param transposed Whether `w` is stored `[K, N]`.
 * @param n0 First output row.
 * @param n1 End output row.
 * @returns The half.
 */
export function sliceHalf(
  w: RawTensor,
  bias: Float32Array | null,
  transposed: boolean,
  n0: number,
  n1: number,
): HalfWeight {
  const [a, b] = w.shape as [number, number];
  const N = transposed ? b : a, K = transposed ? a : b;
  const rows = n1 - n0;
  let dtype: HalfDType, src: Uint16Array | Float32Array;
  if (w.dtype === "F16" || w.dtype === "BF16") {
    dtype = w.dtype;
    const d = w.data.byteOffset % 2 === 0 ? w.data : w.data.slice();
    src = new Uint16Array(d.buffer, d.byteOffset, d.byteLength >>> 1);
  } else {
    dtype = "F32";
    src = w.dtype === "F32" && w.data.byteOffset % 4 === 0
      ? new Float32Array(w.data.buffer, w.data.byteOffset, w.data.byteLength >>> 2)
      : toFloat32(w.data, w.dtype);
  }
  let out: Uint16Array | Float32Array;
  if (!transposed) {
    out = src.slice(n0 * K, n1 * K);
  } else {
    out = src instanceof Uint16Array ? new Uint16Array(K * rows) : new Float32Array(K * rows);
    for (let k = 0; k < K; k++) {
      out.set(src.subarray(k * N + n0, k * N + n1), k * rows);
    }
  }
  return {
    dtype,
    data: out.buffer as ArrayBuffer,
    rows,
    K,
    transposed,
    bias: bias ? bias.slice(n0, n1) : null,
  };
}

/**
 * Copies output columns `n0..n1` of a GPTQ linear for the Worker. Columns
 * are cut from the packed tensors directly, so `n0` and `n1` must be
 * multiples of 32 (where `qzeros` words begin).
 *
 * @example
 * ```ts
 * import { sliceGptqHalf } from "./_sync_pool.ts";
 * import { packQWeight, packQZeros } from "../../gptq/pack.ts";
 * const K = 32, N = 64, codes = new Uint8Array(K * N).map((_, i) => i % 16);
 * const t = {
 *   qweight: packQWeight(codes, K, N, 4), qzeros: packQZeros(new Uint8Array(N).fill(8), 1, N, 4, "gptq"),
 *   scales: new Uint16Array(N).fill(0x3c00), gIdx: null, bias: null, K, N, G: 1, bits: 4 as const,
 * };
 * const h = sliceGptqHalf(t, false, 0, 32, 64);
 * console.log(h.N, h.qweight.length, h.qzeros.length); // 32 128 4
 * ```
 *
 * @param t The layer's tensors.
 * @param v2 Whether the zero format is "gptq_v2".
 * @param mode Act-order handling: 0 auto, 1 reorder, 2 gather.
 * @param n0 First output column (a multiple of 32).
 * @param n1 End output column (a multiple of 32, at most N).
 * @param act Activation precision: 0 f32 (default), 1 int8.
 * @returns The half, in new buffers.
 * @throws {GptqError} INVALID_ARGUMENT when the range is not on 32-column boundaries.
 */
export function sliceGptqHalf(
  t: QuantLinearTensors,
  v2: boolean,
  mode: number,
  n0: number,
  n1: number,
  act = 0,
): GptqHalf {
  const { K, N, G, bits } = t;
  if (n0 % 32 !== 0 || n1 % 32 !== 0 || !(0 <= n0 && n0 <= n1 && n1 <= N)) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `GPTQ columns ${n0}..${n1} of ${N} are not on 32-column boundaries`,
      { hint: "split GPTQ linears at multiples of 32 output columns" },
    );
  }
  const cols = n1 - n0;
  const rows = (K / 32) * bits;
  const qweight = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    qweight.set(t.qweight.subarray(r * N + n0, r * N + n1), r * cols);
  }
  const zw = (N / 32) * bits, zc = (cols / 32) * bits, z0 = (n0 / 32) * bits;
  const qzeros = new Int32Array(G * zc);
  const scales = new Uint16Array(G * cols);
  for (let g = 0; g < G; g++) {
    qzeros.set(t.qzeros.subarray(g * zw + z0, g * zw + z0 + zc), g * zc);
    scales.set(t.scales.subarray(g * N + n0, g * N + n1), g * cols);
  }
  return {
    qweight,
    qzeros,
    scales,
    gIdx: t.gIdx ? t.gIdx.slice() : new Int32Array(0),
    K,
    N: cols,
    bits,
    v2,
    mode,
    act,
    bias: t.bias ? t.bias.slice(n0, n1) : null,
  };
}

/**
 * Bytes a half holds (what the Worker keeps, up to its layout's small
 * tables).
 *
 * @example
 * ```ts
 * import { halfBytes } from "./_sync_pool.ts";
 * console.log(halfBytes({ dtype: "F32", data: new ArrayBuffer(16), rows: 2, K: 2, transposed: false, bias: null })); // 16
 * ```
 *
 * @param h A dense or GPTQ half.
 * @returns Its byte size.
 */
export function halfBytes(h: HalfWeight | GptqHalf): number {
  const b = h.bias ? h.bias.byteLength : 0;
  if ("qweight" in h) {
    return h.qweight.byteLength + h.qzeros.byteLength + h.scales.byteLength +
      h.gIdx.byteLength + b;
  }
  return h.data.byteLength + b;
}

/**
 * The helper Worker and its shared buffers (see the module doc). Every method
 * is synchronous.
 *
 * @example
 * ```ts ignore
 * import { SyncWorker, sliceHalf } from "./_sync_pool.ts";
 * import { wasmModule } from "../../wasm/mod.ts";
 * const sw = SyncWorker.start(await wasmModule());
 * const h = sw.load(sliceHalf(raw, null, false, 2048, 4096), "q_proj");
 * sw.begin(h, x, 1, 4096);      // the Worker starts on rows 2048..4096
 * // ... compute rows 0..2048 here ...
 * sw.finish();                  // waits for it
 * sw.copyOut(y, 1, 4096, 2048, 2048);
 * sw.release(h);
 * sw.close();
 * ```
 */
export class SyncWorker {
  readonly #worker: NodeWorker;
  readonly #port: MessagePort;
  readonly #ctl: Int32Array;
  #seq = 0;
  /** Sequence number the caller has not yet waited for (0 = none). */
  #pending = 0;
  /** What the pending command was about, for error messages. */
  #pendingWhat: string | undefined;
  #x: Float32Array = new Float32Array(new SharedArrayBuffer(0));
  /** Whether `#x` is this object's own buffer (not a caller's shared `x`). */
  #xOwned = true;
  #y: Float32Array = new Float32Array(new SharedArrayBuffer(0));
  #nextHandle = 1;
  #live = 0;
  #closed = false;
  #crashed: string | null = null;

  private constructor(worker: NodeWorker, port: MessagePort, ctl: Int32Array) {
    this.#worker = worker;
    this.#port = port;
    this.#ctl = ctl;
  }

  /**
   * Starts the Worker and waits (blocking) until its wasm instance is ready.
   *
   * @example
   * ```ts ignore
   * const sw = SyncWorker.start(await wasmModule());
   * ```
   *
   * @param module The compiled gptq wasm module.
   * @param opts Start timeout.
   * @returns The ready Worker.
   * @throws {GptqError} WASM when it does not start.
   */
  static start(module: WebAssembly.Module, opts: SyncWorkerOptions = {}): SyncWorker {
    const why = helperUnavailable();
    if (why) throw new GptqError("WASM", `cannot start the helper Worker: ${why}`, { hint: HINT });
    const ctl = new Int32Array(new SharedArrayBuffer(CTL.SIZE * 4));
    const { port1, port2 } = new MessageChannel();
    const init: InitMessage = { ctl: ctl.buffer as SharedArrayBuffer, port: port2, module };
    let worker: NodeWorker;
    try {
      // node:worker_threads for unref(): an idle helper must not keep the
      // process alive when a caller forgets to release its linears.
      worker = new NodeWorker(WORKER_URL, {
        name: "gptq-sync-matmul",
        workerData: init,
        transferList: [port2 as never],
      });
      worker.unref();
    } catch (e) {
      port1.close();
      port2.close();
      throw new GptqError("WASM", `cannot start the helper Worker: ${errText(e)}`, {
        hint: HINT,
        cause: e,
      });
    }
    const sw = new SyncWorker(worker, port1, ctl);
    worker.on("error", (e: unknown) => {
      sw.#crashed = errText(e);
    });
    const limit = opts.startTimeoutMs ?? 30_000;
    const t0 = performance.now();
    while (Atomics.load(ctl, CTL.READY) === 0) {
      const left = limit - (performance.now() - t0);
      if (left <= 0) break;
      Atomics.wait(ctl, CTL.READY, 0, left);
    }
    const ready = Atomics.load(ctl, CTL.READY);
    if (ready !== 1) {
      const msg = ready === 2 ? sw.#receiveError() : `not ready after ${limit} ms`;
      sw.#kill();
      throw new GptqError("WASM", `the helper Worker failed to start: ${msg}`, { hint: HINT });
    }
    SYNC_POOL_STATS.started++;
    return sw;
  }

  /** Whether {@linkcode SyncWorker.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Weights loaded and not yet released. */
  get live(): number {
    return this.#live;
  }

  /**
   * Hands a weight half to the Worker (it builds its copy while the caller
   * goes on; a failure surfaces at the next call).
   *
   * @example
   * ```ts ignore
   * const h = sw.load(sliceHalf(raw, bias, false, n0, N), "model.layers.0.mlp.up_proj.weight");
   * ```
   *
   * @param w The half (its buffers are transferred): dense, or GPTQ-packed
   * ({@linkcode sliceGptqHalf}).
   * @param name Tensor name, for error messages.
   * @returns The Worker's handle for it.
   */
  load(w: HalfWeight | GptqHalf, name?: string): number {
    this.#sync();
    const handle = this.#nextHandle++;
    if ("qweight" in w) {
      const msg: PortMessage = { op: "loadGptq", handle, ...w };
      this.#port.postMessage(msg, [
        w.qweight.buffer,
        w.qzeros.buffer,
        w.scales.buffer,
        w.gIdx.buffer,
      ] as ArrayBuffer[]);
    } else {
      const msg: PortMessage = { op: "load", handle, ...w };
      this.#port.postMessage(msg, [w.data]);
    }
    this.#issue(OP.MESSAGE, handle, 0, `loading ${name ?? "a weight"} into the helper Worker`);
    this.#live++;
    return handle;
  }

  /**
   * Copies `x` to shared memory and starts the Worker on its half; pair with
   * {@linkcode SyncWorker.finish}. An `x` that already lies at the start of
   * a `SharedArrayBuffer` is not copied: the Worker reads it in place (so
   * several Workers can share one copy; keep it unchanged until `finish`).
   *
   * @example
   * ```ts ignore
   * sw.begin(h, x, M, K, rows);
   * ```
   *
   * @param handle From {@linkcode SyncWorker.load}.
   * @param x Input `[M, K]`.
   * @param M Rows.
   * @param K Input features.
   * @param rows Output rows of the Worker's half.
   * @param name Tensor name, for error messages.
   */
  begin(handle: number, x: Float32Array, M: number, K: number, rows: number, name?: string): void {
    this.#sync();
    const nx = M * K;
    const shared = x.buffer instanceof SharedArrayBuffer && x.byteOffset === 0 && x.length >= nx;
    this.#buffers(nx, M * rows, shared ? x : null);
    if (!shared) this.#x.set(nx === x.length ? x : x.subarray(0, nx));
    SYNC_POOL_STATS.linearCalls++;
    this.#issue(OP.LINEAR, handle, M, name);
  }

  /**
   * Starts the Worker on causal attention for `M` query rows whose first
   * sits at position `past` (the caches must hold positions
   * `0..past + M`); pair with {@linkcode SyncWorker.finish}, then
   * {@linkcode SyncWorker.copyAttention}. The Worker runs the same kernel as
   * this thread, so its rows are bit-identical to a one-thread call.
   *
   * @example
   * ```ts ignore
   * sw.beginAttention(q.subarray(t0 * Hq * D), kCache, vCache, T - t0, Hq, Hkv, D, past + t0);
   * ```
   *
   * @param q Query rows `[M, Hq·D]` (RoPE applied).
   * @param kCache Key cache `[≥ past + M, Hkv·D]`.
   * @param vCache Value cache, the same shape.
   * @param M Query rows.
   * @param Hq Query heads.
   * @param Hkv KV heads.
   * @param D Head dimension.
   * @param past Cached positions before the first query row.
   */
  beginAttention(
    q: Float32Array,
    kCache: Float32Array,
    vCache: Float32Array,
    M: number,
    Hq: number,
    Hkv: number,
    D: number,
    past: number,
  ): void {
    this.#sync();
    const nq = M * Hq * D, nkv = (past + M) * Hkv * D;
    this.#buffers(nq + 2 * nkv, nq, null);
    const x = this.#x;
    x.set(q.subarray(0, nq));
    x.set(kCache.subarray(0, nkv), nq);
    x.set(vCache.subarray(0, nkv), nq + nkv);
    const c = this.#ctl;
    c[CTL.HQ] = Hq;
    c[CTL.HKV] = Hkv;
    c[CTL.D] = D;
    c[CTL.PAST] = past;
    SYNC_POOL_STATS.attentionCalls++;
    this.#issue(OP.ATTENTION, 0, M, "attention");
  }

  /**
   * Copies the Worker's attention rows (`n` floats) into `out` at `offset`.
   *
   * @example
   * ```ts ignore
   * sw.copyAttention(out, t0 * Hq * D, (T - t0) * Hq * D);
   * ```
   *
   * @param out The full attention output.
   * @param offset Where the Worker's rows go.
   * @param n Floats to copy.
   */
  copyAttention(out: Float32Array, offset: number, n: number): void {
    out.set(this.#y.subarray(0, n), offset);
  }

  /**
   * Makes the shared regions hold `nx` inputs (in `x` itself when `x` is
   * given: a caller's shared buffer) and `ny` outputs, telling the Worker
   * about new buffers.
   */
  #buffers(nx: number, ny: number, x: Float32Array | null): void {
    const grow = (have: number, need: number) => Math.max(need, Math.min(2 * have, need * 4));
    let xs = this.#x, ys = this.#y;
    if (x) {
      if (x.buffer !== xs.buffer) xs = new Float32Array(x.buffer);
    } else if (!this.#xOwned || xs.length < nx) {
      xs = new Float32Array(new SharedArrayBuffer(4 * grow(this.#xOwned ? xs.length : 0, nx)));
    }
    if (ys.length < ny) ys = new Float32Array(new SharedArrayBuffer(4 * grow(ys.length, ny)));
    if (xs !== this.#x || ys !== this.#y) {
      this.#x = xs;
      this.#y = ys;
      this.#xOwned = x === null;
      const msg: PortMessage = {
        op: "buffers",
        x: xs.buffer as SharedArrayBuffer,
        y: ys.buffer as SharedArrayBuffer,
      };
      this.#port.postMessage(msg);
      this.#issue(OP.MESSAGE, 0, 0, "growing the shared buffers");
      this.#sync();
    }
  }

  /**
   * Waits for the Worker's half of the call started by
   * {@linkcode SyncWorker.begin}.
   *
   * @example
   * ```ts ignore
   * sw.finish();
   * ```
   *
   * @throws {GptqError} WASM when the Worker failed.
   */
  finish(): void {
    this.#sync();
  }

  /**
   * Copies the Worker's half `[M, rows]` into columns `n0..n0+rows` of `y [M, N]`.
   *
   * @example
   * ```ts ignore
   * sw.copyOut(y, M, N, n0, N - n0);
   * ```
   *
   * @param y The full output.
   * @param M Rows.
   * @param N Output features.
   * @param n0 First column of the half.
   * @param rows Width of the half.
   */
  copyOut(y: Float32Array, M: number, N: number, n0: number, rows: number): void {
    const h = this.#y;
    if (M === 1) {
      y.set(h.subarray(0, rows), n0);
      return;
    }
    for (let m = 0; m < M; m++) y.set(h.subarray(m * rows, (m + 1) * rows), m * N + n0);
  }

  /**
   * Frees a weight in the Worker.
   *
   * @example
   * ```ts ignore
   * sw.release(h);
   * ```
   *
   * @param handle From {@linkcode SyncWorker.load}.
   */
  release(handle: number): void {
    if (this.#closed) return;
    this.#sync();
    this.#issue(OP.RELEASE, handle, 0, "releasing a weight");
    this.#live--;
  }

  /**
   * Stops the Worker (blocking until it has left its loop) and frees the
   * channel. Safe to call twice.
   *
   * @example
   * ```ts ignore
   * sw.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    try {
      this.#sync();
    } catch { /* closing anyway */ }
    try {
      this.#issue(OP.EXIT, 0, 0, "stopping");
      this.#sync(5000);
    } catch { /* terminate below */ }
    this.#kill();
    SYNC_POOL_STATS.closed++;
  }

  #kill(): void {
    this.#closed = true;
    // Tell a Worker that is (or later gets) in its loop to leave it.
    const c = this.#ctl;
    c[CTL.OP] = OP.EXIT;
    Atomics.store(c, CTL.CMD, -1);
    Atomics.notify(c, CTL.CMD);
    this.#worker.terminate().catch(() => {});
    this.#port.close();
  }

  #issue(op: number, handle: number, M: number, what: string | undefined): void {
    if (this.#closed) {
      throw new GptqError("INVALID_ARGUMENT", "the helper Worker was closed", {
        tensor: what,
        hint: "the wasm kernels were disposed; create new ones with createWasmKernels()",
      });
    }
    const c = this.#ctl;
    c[CTL.OP] = op;
    c[CTL.HANDLE] = handle;
    c[CTL.M] = M;
    c[CTL.STATUS] = 0;
    const seq = ++this.#seq;
    this.#pending = seq;
    this.#pendingWhat = what;
    Atomics.store(c, CTL.CMD, seq);
    Atomics.notify(c, CTL.CMD);
  }

  /** Waits for the pending command, if any; throws its error. */
  #sync(limitMs = STUCK_MS): void {
    const seq = this.#pending;
    if (seq === 0) return;
    const c = this.#ctl;
    const t0 = performance.now();
    let d: number;
    while ((d = Atomics.load(c, CTL.DONE)) !== seq) {
      const left = limitMs - (performance.now() - t0);
      if (left <= 0) {
        this.#kill();
        throw new GptqError(
          "WASM",
          `the helper Worker did not answer within ${limitMs} ms${
            this.#crashed ? ` (it crashed: ${this.#crashed})` : ""
          }`,
          { tensor: this.#pendingWhat, hint: HINT },
        );
      }
      Atomics.wait(c, CTL.DONE, d, Math.min(left, 1000));
    }
    this.#pending = 0;
    if (Atomics.load(c, CTL.STATUS) !== 0) {
      throw new GptqError("WASM", `the helper Worker failed: ${this.#receiveError()}`, {
        tensor: this.#pendingWhat,
        hint: HINT,
      });
    }
  }

  #receiveError(): string {
    const r = receiveMessageOnPort(this.#port as never) as { message?: { error?: string } };
    return r?.message?.error ?? "unknown error";
  }
}
