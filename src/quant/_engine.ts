// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * What {@linkcode quantizeModel} needs from a compute backend, behind one
 * interface for the CPU and the GPU: where the calibration activations live
 * ({@linkcode Activations}), and where each true-sequential group's Hessians
 * are accumulated and its modules solved ({@linkcode GroupSolver}).
 *
 * This file holds the interface and the CPU engine: activations in host
 * memory (each block's forward uploads them to a host backend and reads the
 * output back), Hessians and solves on the WASM solver Workers (or an
 * in-process `QuantBackend`). The device engine (WebGPU, CUDA/HIP) is
 * `./_device_engine.ts`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { Backend, Tensor } from "../backends/backend.ts";
import {
  type BlockContext,
  type BlockWeights,
  type LinearInput,
  type LinearInputHook,
  type Reuse,
  runBlock,
} from "../runtime/model.ts";
import {
  createParallelGptq,
  type ParallelGptq,
  type PooledHessian,
  type PreparedLayer,
} from "./_solver_pool.ts";
import {
  type GptqLayerResult,
  type GptqSolveOptions,
  type HessianAccumulator,
  hessianErrorSums,
  type QuantBackend,
} from "./solver.ts";

/** Thrown by a capture hook to end a block's forward once a group has its inputs. */
export const STOP_BLOCK: unique symbol = Symbol("stop block");

/** The calibration activations entering the current block, one matrix per sample. */
export interface Activations {
  /**
   * Runs `block` over sample `s` (KV cache from position 0), calling `hook`
   * with each linear input; a hook that throws {@linkcode STOP_BLOCK} ends
   * the forward there.
   *
   * `final`: which intermediates this run computes with weights that will
   * not change any more (the attention output once q/k/v are quantized, the
   * MLP's intermediate once everything up to gate/up is), so an engine may
   * keep them from this run and reuse them in later captures and in
   * {@linkcode advance} (the CPU engine does, within its `intermediateCacheBytes`).
   */
  capture(block: BlockWeights, s: number, hook: LinearInputHook, final?: FinalIntermediates): void;
  /** Replaces every sample's activations with `block`'s output. */
  advance(block: BlockWeights): Promise<void>;
  /**
   * Writes every sample's activations, concatenated (f32, little-endian), to
   * a new file at `path` (the journal's activations file).
   */
  save(path: string): Promise<void>;
  /** Frees them. */
  free(): void;
}

/** Which intermediates of a block run are final (see {@linkcode Activations.capture}). */
export interface FinalIntermediates {
  /** The attention output (q/k/v will not change). */
  attention: boolean;
  /** The MLP's intermediate (q/k/v, o and gate/up will not change). */
  mlpMid: boolean;
}

/** One module to solve. */
export interface ModuleToSolve {
  /** Full path (error messages). */
  path: string;
  /** The activation it reads. */
  input: LinearInput;
  /** The weight `[N, K]`, f32 (its memory may be handed over: do not use it afterwards). */
  W: Float32Array;
  /** Output features. */
  N: number;
  /** Input features. */
  K: number;
}

/** A solved module. */
export interface SolvedModule {
  /** The quantized layer (`q` may hold only the sampled rows: use `qRows`). */
  r: GptqLayerResult;
  /** The sampled rows of Q. */
  qRows: Float32Array;
  /** The sampled rows of round-to-nearest (the report's baseline). */
  rtnRows: Float32Array;
}

/** One true-sequential group: a Hessian per distinct input, and its modules' solves. */
export interface GroupSolver {
  /** A Hessian input failed (the capture should stop; {@linkcode finish} throws it). */
  readonly failed: boolean;
  /** From the forward's hook: adds `x` (one sequence) to the Hessian of `input`. */
  add(input: LinearInput, x: Tensor, sample: number): void;
  /** Waits until few enough adds are pending (bounded memory). */
  drain(): Promise<void>;
  /** Waits for every add; throws the first failure. */
  finish(): Promise<void>;
  /**
   * GPTQ (or RTN) for one module, with `pick`'s rows of Q and of RTN for the report.
   *
   * @param m The module.
   * @param opts Solver settings.
   * @param method `gptq` or `rtn`.
   * @param pick The sampled rows.
   * @param wRows Those rows of W.
   */
  solve(
    m: ModuleToSolve,
    opts: GptqSolveOptions,
    method: "gptq" | "rtn",
    pick: readonly number[],
    wRows: Float32Array,
  ): Promise<SolvedModule>;
  /** `Σ (D·H)∘D` per equal row block of `d` (`[M, K]`) against the Hessian of `input`. */
  errorSums(input: LinearInput, d: Float32Array, M: number, parts: number): Promise<number[]>;
  /** Frees the group's Hessians. */
  free(): Promise<void>;
}

/** Maps a Hessian-input failure to the error reported (naming the modules it feeds). */
export type InputErrorMapper = (e: unknown, input: LinearInput, sample: number) => unknown;

/** Activations and solver for one quantization run. */
export interface QuantEngine {
  /**
   * `cpu`, or the device engine's backend (`webgpu`, `cuda`, `hip`, `hip-cpu`);
   * journaled: a run resumes only on the same kind.
   */
  readonly kind: "cpu" | "webgpu" | "cuda" | "hip" | "hip-cpu";
  /** The forward backend's name. */
  readonly forwardName: string;
  /** The solver's name (the report's `backends.solver`). */
  readonly solverName: string;
  /** The embedded calibration samples as activations. */
  embed(embedded: Tensor[], lengths: readonly number[]): Activations;
  /** Activations from the journal's file. */
  restore(all: Float32Array, lengths: readonly number[]): Activations;
  /**
   * A group with one Hessian per entry of `inputs` (input → K).
   *
   * @param inputs The distinct inputs and their sizes.
   * @param inputError Maps an add's failure to the error reported.
   */
  group(inputs: ReadonlyMap<LinearInput, number>, inputError: InputErrorMapper): GroupSolver;
  /** Frees everything (Workers, device buffers). */
  close(): void;
}

/**
 * Rows `pick` of a row-major `[·, K]` matrix, as `[pick.length, K]`.
 *
 * @example
 * ```ts
 * import { gatherRows } from "./_engine.ts";
 * console.log(gatherRows(new Float32Array([1, 2, 3, 4, 5, 6]), [0, 2], 2)); // Float32Array [1, 2, 5, 6]
 * ```
 *
 * @param a The matrix.
 * @param pick Row indices.
 * @param K Row length.
 * @returns The rows.
 */
export function gatherRows(a: Float32Array, pick: readonly number[], K: number): Float32Array {
  const out = new Float32Array(pick.length * K);
  pick.forEach((n, i) => out.set(a.subarray(n * K, (n + 1) * K), i * K));
  return out;
}

/**
 * Writes arrays one after another into a new file (no concatenated copy).
 *
 * @example
 * ```ts ignore
 * await writeParts("acts.f32", (async function* () { yield new Float32Array([1, 2]); })());
 * ```
 *
 * @param path The file (created or truncated).
 * @param parts The arrays, in order.
 */
export async function writeParts(path: string, parts: AsyncIterable<Float32Array>): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for await (const x of parts) {
    let b = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    while (b.length) b = b.subarray(await f.write(b));
  }
}

/** Options of {@linkcode createCpuEngine}. */
export interface CpuEngineOptions {
  /** A host backend (it must have `readSync`). */
  backend: Backend;
  /** The block context for `backend`. */
  ctx: BlockContext;
  /** Solver Workers (default 2). */
  threads?: number;
  /** An in-process solver instead of the Workers. */
  solver?: QuantBackend;
  /** The default solver (WASM), when `solver` is not given. */
  wasm: QuantBackend;
  /** Longest sample (KV cache size). */
  maxLen: number;
  /**
   * Memory for keeping the current block's final intermediates (attention
   * outputs, MLP intermediates) between its true-sequential groups (default
   * {@linkcode DEFAULT_INTERMEDIATE_CACHE_BYTES}): kept in the order they are
   * computed while they fit, the others recomputed (all of them with 0).
   * Results are identical either way.
   */
  intermediateCacheBytes?: number;
}

/** Default {@linkcode CpuEngineOptions.intermediateCacheBytes}: 1 GiB. */
export const DEFAULT_INTERMEDIATE_CACHE_BYTES = 2 ** 30;

/** Counters for tests and benchmarks (process-wide): block runs that reused a kept intermediate. */
export const ENGINE_STATS: { attentionReused: number; mlpMidReused: number } = {
  attentionReused: 0,
  mlpMidReused: 0,
};

/** Kept intermediates of one sample (host copies). */
interface Kept {
  attention?: Float32Array;
  mlpMid?: Float32Array;
}

/**
 * The CPU engine: host activations, Hessians and solves on the WASM solver
 * Workers (Worker 0 holds each Hessian; this thread never holds a `K×K`
 * array), or in-process with a given `solver`.
 *
 * @example
 * ```ts ignore
 * const engine = await createCpuEngine({ backend, ctx, wasm: await createWasmSolver(), maxLen });
 * ```
 *
 * @param o Backend, Workers, solver.
 * @returns The engine.
 */
export async function createCpuEngine(o: CpuEngineOptions): Promise<QuantEngine> {
  const kernels = o.backend;
  if (!kernels.readSync) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `quantization on the ${kernels.name} backend is not supported`,
      { hint: "quantize with --backend wasm (the default) or webgpu" },
    );
  }
  const readSync = kernels.readSync.bind(kernels);
  const solver = o.solver ?? o.wasm;
  // The solver always runs on Workers (one is enough): Worker 0 holds the
  // Hessian and its factor, so the main thread never holds a K×K array.
  // A caller-supplied `solver` runs in-process instead.
  const pool: ParallelGptq | null = o.solver
    ? null
    : await createParallelGptq(Math.max(1, o.threads ?? 2));
  const H = o.ctx.config.hiddenSize;
  const kvCols = o.ctx.config.numKvHeads * o.ctx.config.headDim;
  const kCache = kernels.zeros(o.maxLen, kvCols), vCache = kernels.zeros(o.maxLen, kvCols);
  const cacheBytes = o.intermediateCacheBytes ?? DEFAULT_INTERMEDIATE_CACHE_BYTES;
  // One block over one sample's host activations; the output comes back to the host.
  // `kept`: that sample's kept intermediates (used instead of computing
  // them); `keep(which, t)`: called with the final ones this run computes.
  const blockForward = (
    block: BlockWeights,
    x: Float32Array,
    rows: number,
    hook?: LinearInputHook,
    kept?: Kept,
    keep?: (which: keyof Kept, t: Tensor) => void,
  ): Float32Array => {
    const xt = kernels.upload(x, rows, H);
    const up = (v: Float32Array | undefined) =>
      v ? kernels.upload(v, rows, v.length / rows) : undefined;
    const ca = up(kept?.attention), cm = up(kept?.mlpMid);
    if (ca) ENGINE_STATS.attentionReused++;
    if (cm) ENGINE_STATS.mlpMidReused++;
    const reuse = (which: keyof Kept, cached: Tensor | undefined): Reuse => ({
      ...(cached ? { cached } : {}),
      ...(keep ? { keep: (t: Tensor) => keep(which, t) } : {}),
    });
    try {
      const y = runBlock(o.ctx, block, xt, kCache, vCache, 0, hook, {
        attention: reuse("attention", ca),
        mlpMid: reuse("mlpMid", cm),
      });
      const out = readSync(y);
      kernels.free(y);
      return out;
    } finally {
      kernels.free(xt);
      if (ca) kernels.free(ca);
      if (cm) kernels.free(cm);
    }
  };
  const activations = (start: Float32Array[], lengths: readonly number[]): Activations => {
    let xs = start;
    // The current block's final intermediates, per sample, kept in the order
    // they are computed while they fit in `cacheBytes`; the rest are
    // recomputed (so a budget smaller than all of them still saves its share).
    let kept: Kept[] = [];
    let keptBytes = 0;
    return {
      capture(block, s, hook, final) {
        const k = kept[s] ??= {};
        const keep = (which: keyof Kept, t: Tensor) => {
          if (!final?.[which] || k[which] || keptBytes + 4 * t.rows * t.cols > cacheBytes) return;
          k[which] = readSync(t).slice();
          keptBytes += 4 * t.rows * t.cols;
        };
        try {
          blockForward(block, xs[s]!, lengths[s]!, hook, k, final ? keep : undefined);
        } catch (e) {
          if (e !== STOP_BLOCK) throw e;
        }
      },
      advance(block) {
        // Every module is final now: kept intermediates stand for what computes them.
        xs = xs.map((x, s) => blockForward(block, x, lengths[s]!, undefined, kept[s]));
        kept = [];
        keptBytes = 0;
        return Promise.resolve();
      },
      save: (path) =>
        writeParts(
          path,
          async function* () {
            yield* xs;
          }(),
        ),
      free() {
        xs = [];
        kept = [];
        keptBytes = 0;
      },
    };
  };

  return {
    kind: "cpu",
    forwardName: kernels.name,
    solverName: solver.name,
    embed: (embedded, lengths) => activations(embedded.map((t) => readSync(t)), lengths),
    restore(all, lengths) {
      const xs: Float32Array[] = [];
      let off = 0;
      for (const L of lengths) {
        xs.push(all.slice(off, off + L * H));
        off += L * H;
      }
      return activations(xs, lengths);
    },
    group: (inputs, inputError) => cpuGroup(inputs, inputError, pool, solver, readSync),
    close() {
      pool?.close();
    },
  };
}

function cpuGroup(
  inputs: ReadonlyMap<LinearInput, number>,
  inputError: InputErrorMapper,
  pool: ParallelGptq | null,
  solver: QuantBackend,
  readSync: (x: Tensor) => Float32Array,
): GroupSolver {
  // One Hessian per distinct input: on Worker 0 of the pool (the activations
  // are posted there; no K×K array on this thread), or in this thread's wasm
  // with a given solver.
  const pooled = new Map<LinearInput, PooledHessian>();
  const local = new Map<LinearInput, HessianAccumulator>();
  const hs = new Map<LinearInput, Float32Array>();
  let prepared = null as { input: LinearInput; layer: PreparedLayer } | null;
  // Adds posted to Worker 0 and not yet done; the first failure (in posting
  // order, as Worker 0 answers in order) is the one reported.
  const inFlight: Promise<void>[] = [];
  let failure: unknown = null;
  for (const [input, K] of inputs) {
    if (pool) pooled.set(input, pool.hessian(K));
    else local.set(input, solver.hessian(K));
  }
  return {
    get failed() {
      return failure !== null;
    },
    add(input, t, s) {
      const x = readSync(t), rows = t.rows;
      const pa = pooled.get(input);
      if (pa) {
        inFlight.push(
          pa.add(x, 1, rows).catch((e) => {
            failure ??= inputError(e, input, s);
          }),
        );
      } else {
        try {
          local.get(input)!.add(x, 1, rows);
        } catch (e) {
          throw inputError(e, input, s);
        }
      }
    },
    async drain() {
      // At most two samples' activations wait on Worker 0 (bounded memory).
      while (inFlight.length > 2 * pooled.size) await inFlight.shift();
    },
    async finish() {
      await Promise.all(inFlight);
      if (failure !== null) throw failure;
      for (const [k, a] of local) {
        hs.set(k, a.h());
        a.free();
      }
      local.clear();
    },
    async solve(m, opts, method, pick, wRows) {
      const { W, N, K, path, input } = m;
      if (method === "rtn") {
        const r = solver.rtn(W, N, K, opts);
        const rows = gatherRows(r.q, pick, K);
        return { r, qRows: rows, rtnRows: rows };
      }
      // RTN is row by row, so its sampled rows equal those of a full run.
      const rtnRows = solver.rtn(wRows, pick.length, K, opts).q;
      const pa = pooled.get(input);
      if (pool && pa) {
        // Modules that read the same input (q/k/v, up/gate) share one prepared Hessian.
        if (prepared?.input !== input) {
          prepared = { input, layer: await pa.prepare(opts, path) };
        }
        // W's memory moves to the Workers (no copy left here).
        const r = await pool.quantize(prepared.layer, W, N, {
          name: path,
          qRows: pick,
          transferW: true,
        });
        return { r, qRows: r.q, rtnRows };
      }
      const r = solver.gptq(W, N, K, hs.get(input)!, opts, path);
      return { r, qRows: gatherRows(r.q, pick, K), rtnRows };
    },
    async errorSums(input, d, M, parts) {
      const pa = pooled.get(input);
      return pa
        ? Array.from(await pa.errorSums(d, M, parts))
        : await hessianErrorSums(d, M, hs.get(input)!, d.length / M, parts);
    },
    async free() {
      // Free this group's Hessians (and the prepared factor) before the next group's.
      // (A failure here means a dead Worker, reported by the next call.)
      for (const a of local.values()) a.free();
      await Promise.all([...pooled.values()].map((a) => a.free().catch(() => {})));
      if (pool && pooled.size) await pool.release().catch(() => {});
    },
  };
}
