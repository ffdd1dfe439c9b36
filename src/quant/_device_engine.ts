// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The device engine of {@linkcode quantizeModel}, for a backend whose tensors
 * live on a GPU: WebGPU (`src/backends/webgpu/solver.ts`) or CUDA/HIP
 * (`src/backends/cuda/solver.ts`). The calibration activations stay on the
 * device from the embeddings to the last block, the forward's linear inputs
 * feed device Hessians directly (each hook call only enqueues a kernel: no
 * wait, no read), and modules are solved by the device's GPTQ solver. Per
 * module, one upload of W and one read of its codes, scales and zeros; per
 * Hessian, two small reads; per block, one read of the activations for the
 * journal.
 *
 * The engine is written once against {@linkcode DeviceSolver}, which both
 * device solvers implement; {@linkcode createDeviceEngine} opens the solver
 * that matches the backend.
 *
 * @module
 */

import type { Backend, Tensor } from "../backends/backend.ts";
import type { CudaBackend } from "../backends/cuda/cuda_backend.ts";
import type { WebGpuBackend } from "../backends/webgpu/webgpu_backend.ts";
import type { DevicePreparedHessian, DeviceQuantizeOptions } from "../backends/_gptq_solve_host.ts";
import { type BlockContext, type LinearInput, runBlock } from "../runtime/model.ts";
import {
  type Activations,
  gatherRows,
  type GroupSolver,
  type QuantEngine,
  STOP_BLOCK,
  writeParts,
} from "./_engine.ts";
import type { GptqLayerResult, GptqSolveOptions } from "./solver.ts";

/** Bytes of activations read back at once for the journal. */
const SAVE_BATCH = 256 * 2 ** 20;

/** The device engines: the backend's name (journaled: a run resumes on the same one). */
export type DeviceEngineKind = "webgpu" | "cuda" | "hip" | "hip-cpu";

/** A Hessian accumulated on a device. */
export interface DeviceHessian {
  /** Adds `nSeq` sequences of `tokens` rows, a tensor of the solver's backend (enqueued). */
  addTensor(x: Tensor, nSeq: number, tokens: number): void;
  /** Frees the device memory. */
  free(): void;
}

/** What the engine needs from a device's GPTQ solver (the WebGPU and the CUDA/HIP solver). */
export interface DeviceSolver<H extends DeviceHessian, P extends DevicePreparedHessian> {
  /** The solver and its device (the report's `backends.solver`). */
  readonly name: string;
  /** A zero Hessian for `K` inputs. */
  hessian(K: number): H;
  /** Dead columns, act-order, damping and the factor of `H⁻¹`. */
  prepare(h: H, opts: GptqSolveOptions, name?: string): Promise<P>;
  /** GPTQ for `w` (`[N, K]`) with a prepared Hessian. */
  quantize(
    prep: P,
    w: Float32Array,
    N: number,
    opts?: DeviceQuantizeOptions,
  ): Promise<GptqLayerResult>;
  /** `Σ (D·H)∘D` per equal row block of `d`. */
  errorSums(h: H, d: Float32Array, M: number, parts: number): Promise<number[]>;
  /** Round-to-nearest (the WASM solver's). */
  rtn(w: Float32Array, N: number, K: number, opts: GptqSolveOptions): GptqLayerResult;
  /** Frees the solver. */
  dispose(): void;
}

/**
 * The device engine kind of a forward backend, or `null` for a host backend
 * (the CPU engine).
 *
 * @example
 * ```ts
 * import { deviceEngineKind } from "./_device_engine.ts";
 * import { selectBackend } from "../backends/select.ts";
 * const { backend } = await selectBackend("typescript");
 * console.log(deviceEngineKind(backend)); // null
 * ```
 *
 * @param b The forward backend.
 * @returns `webgpu`, `cuda`, `hip`, `hip-cpu` or `null`.
 */
export function deviceEngineKind(b: Backend | undefined): DeviceEngineKind | null {
  if (!b) return null;
  if (b.name === "webgpu" && "context" in b) return "webgpu";
  if ((b.name === "cuda" || b.name === "hip" || b.name === "hip-cpu") && "library" in b) {
    return b.name;
  }
  return null;
}

/**
 * A view of `b` that records the tensors it creates and forgets those freed:
 * a forward ended early by {@linkcode STOP_BLOCK} leaves tensors only this
 * view knows about, and they go back to the device's pool.
 */
function tracking(b: Backend): { backend: Backend; live: Set<Tensor> } {
  const live = new Set<Tensor>();
  const keep = <T extends Tensor>(t: T): T => {
    live.add(t);
    return t;
  };
  const backend: Backend = {
    ...b,
    upload: (d, r, c) => keep(b.upload(d, r, c)),
    zeros: (r, c) => keep(b.zeros(r, c)),
    gather: (t, ids, off) => keep(b.gather(t, ids, off)),
    linear: (x, w) => keep(b.linear(x, w)),
    rmsNorm: (x, w, eps) => keep(b.rmsNorm(x, w, eps)),
    layerNorm: (x, w, bias, eps) => keep(b.layerNorm(x, w, bias, eps)),
    sliceRows: (x, s, n) => keep(b.sliceRows(x, s, n)),
    splitQkv(x, heads, headDim, layout) {
      const out = b.splitQkv(x, heads, headDim, layout);
      out.forEach(keep);
      return out;
    },
    attention: (q, hq, hkv, d, kc, vc, past) => keep(b.attention(q, hq, hkv, d, kc, vc, past)),
    free(t) {
      live.delete(t);
      b.free(t);
    },
  };
  return { backend, live };
}

/**
 * The device engine for a device backend: opens the matching GPTQ solver on
 * the backend's device (WebGPU or CUDA/HIP).
 *
 * @example
 * ```ts ignore
 * const engine = await createDeviceEngine(backend, ctx, maxLen);
 * ```
 *
 * @param be The device backend (forward and solver share its device).
 * @param ctx The block context for `be`.
 * @param maxLen Longest sample (KV cache size).
 * @returns The engine.
 * @throws {TypeError} For a host backend (use the CPU engine).
 */
export async function createDeviceEngine(
  be: Backend,
  ctx: BlockContext,
  maxLen: number,
): Promise<QuantEngine> {
  const kind = deviceEngineKind(be);
  if (kind === "webgpu") {
    const gpu = be as WebGpuBackend;
    const { createWebGpuSolver } = await import("../backends/webgpu/solver.ts");
    const solver = await createWebGpuSolver({ backend: gpu });
    // GPU time by phase (only counted on a context created with `timestamps`: benchmarks).
    return deviceEngine(kind, gpu, solver, ctx, maxLen, (p) => gpu.context.phase(p));
  }
  if (kind) {
    const { createCudaSolver } = await import("../backends/cuda/solver.ts");
    const solver = await createCudaSolver({ backend: be as CudaBackend });
    return deviceEngine(kind, be, solver, ctx, maxLen, () => {});
  }
  throw new TypeError(`backend '${be.name}' keeps its tensors on the host: use the CPU engine`);
}

/**
 * The engine over any device solver.
 *
 * @param kind The engine kind (journaled).
 * @param be The forward backend.
 * @param solver The solver on `be`'s device (disposed by `close`).
 * @param ctx The block context for `be`.
 * @param maxLen Longest sample.
 * @param phase Names the work that follows (GPU timing by phase, WebGPU benchmarks).
 */
function deviceEngine<H extends DeviceHessian, P extends DevicePreparedHessian>(
  kind: DeviceEngineKind,
  be: Backend,
  solver: DeviceSolver<H, P>,
  ctx: BlockContext,
  maxLen: number,
  phase: (name: string) => void,
): QuantEngine {
  const H = ctx.config.hiddenSize;
  const kvCols = ctx.config.numKvHeads * ctx.config.headDim;
  const kCache = be.zeros(maxLen, kvCols), vCache = be.zeros(maxLen, kvCols);
  const activations = (start: Tensor[]): Activations => {
    let xs = start;
    return {
      capture(block, s, hook) {
        // Everything the forward created goes back to the pool: its output and, when the
        // hook stopped it, the tensors it still held.
        const t = tracking(be);
        phase("forward");
        try {
          runBlock({ ...ctx, backend: t.backend }, block, xs[s]!, kCache, vCache, 0, hook);
        } catch (e) {
          if (e !== STOP_BLOCK) throw e;
        } finally {
          for (const x of t.live) be.free(x);
        }
      },
      advance(block) {
        phase("forward");
        const ys = xs.map((x) => runBlock(ctx, block, x, kCache, vCache, 0));
        for (const x of xs) be.free(x);
        xs = ys;
        return Promise.resolve();
      },
      save(path) {
        // Read back in batches of about 256 MiB (one wait each), written as they come.
        const batches: Tensor[][] = [[]];
        let bytes = 0;
        for (const x of xs) {
          const n = x.rows * x.cols * 4;
          if (bytes + n > SAVE_BATCH && batches.at(-1)!.length) {
            batches.push([]);
            bytes = 0;
          }
          batches.at(-1)!.push(x);
          bytes += n;
        }
        return writeParts(
          path,
          (async function* () {
            for (const b of batches) yield* await Promise.all(b.map((x) => be.read(x)));
          })(),
        );
      },
      free() {
        for (const x of xs) be.free(x);
        xs = [];
      },
    };
  };
  return {
    kind,
    forwardName: be.name,
    solverName: solver.name,
    embed: (embedded) => activations(embedded),
    restore(all, lengths) {
      const xs: Tensor[] = [];
      let off = 0;
      for (const L of lengths) {
        xs.push(be.upload(all.subarray(off, off + L * H), L, H));
        off += L * H;
      }
      return activations(xs);
    },
    group: (inputs) => deviceGroup(solver, inputs, phase),
    close() {
      be.free(kCache);
      be.free(vCache);
      solver.dispose();
    },
  };
}

function deviceGroup<H extends DeviceHessian, P extends DevicePreparedHessian>(
  solver: DeviceSolver<H, P>,
  inputs: ReadonlyMap<LinearInput, number>,
  phase: (name: string) => void,
): GroupSolver {
  const hs = new Map<LinearInput, H>();
  for (const [input, K] of inputs) hs.set(input, solver.hessian(K));
  let prepared = null as { input: LinearInput; prep: P } | null;
  return {
    // A NaN/Inf input shows in H: prepare reports it, naming the module.
    failed: false,
    add(input, x) {
      phase("hessian");
      hs.get(input)!.addTensor(x, 1, x.rows);
      phase("forward");
    },
    drain: () => Promise.resolve(),
    finish: () => Promise.resolve(),
    async solve(m, opts, method, pick, wRows) {
      const { W, N, K, path, input } = m;
      if (method === "rtn") {
        const r = solver.rtn(W, N, K, opts);
        const rows = gatherRows(r.q, pick, K);
        return { r, qRows: rows, rtnRows: rows };
      }
      const rtnRows = solver.rtn(wRows, pick.length, K, opts).q;
      // Modules that read the same input (q/k/v, up/gate) share one prepared Hessian.
      if (prepared?.input !== input) {
        prepared?.prep.free();
        prepared = null;
        prepared = { input, prep: await solver.prepare(hs.get(input)!, opts, path) };
      }
      const r = await solver.quantize(prepared.prep, W, N, { name: path, qRows: pick });
      return { r, qRows: r.q, rtnRows };
    },
    errorSums(input, d, M, parts) {
      phase("report");
      return solver.errorSums(hs.get(input)!, d, M, parts);
    },
    free() {
      prepared?.prep.free();
      for (const h of hs.values()) h.free();
      hs.clear();
      return Promise.resolve();
    },
  };
}
