// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WebGPU engine of {@linkcode quantizeModel}: the calibration
 * activations stay on the device from the embeddings to the last block, the
 * forward's linear inputs feed device Hessians directly (each hook call only
 * encodes a dispatch: no submit, no readback), and modules are solved by the
 * device solver (`src/backends/webgpu/solver.ts`). Per module, one upload of
 * W and one readback of its codes, scales and zeros; per Hessian, two small
 * readbacks; per block, one readback of the activations for the journal.
 *
 * @module
 */

import type { Backend, Tensor } from "../backends/backend.ts";
import type { WebGpuBackend } from "../backends/webgpu/webgpu_backend.ts";
import {
  createWebGpuSolver,
  type GpuHessian,
  type GpuPreparedHessian,
  type WebGpuSolver,
} from "../backends/webgpu/solver.ts";
import { type BlockContext, type LinearInput, runBlock } from "../runtime/model.ts";
import {
  type Activations,
  gatherRows,
  type GroupSolver,
  type QuantEngine,
  STOP_BLOCK,
  writeParts,
} from "./_engine.ts";

/** Bytes of activations read back at once for the journal. */
const SAVE_BATCH = 256 * 2 ** 20;

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
 * The WebGPU engine for a WebGPU backend.
 *
 * @example
 * ```ts ignore
 * const engine = await createWebGpuEngine(backend, ctx, maxLen);
 * ```
 *
 * @param be The WebGPU backend (forward and solver share its device).
 * @param ctx The block context for `be`.
 * @param maxLen Longest sample (KV cache size).
 * @returns The engine.
 */
export async function createWebGpuEngine(
  be: WebGpuBackend,
  ctx: BlockContext,
  maxLen: number,
): Promise<QuantEngine> {
  const solver = await createWebGpuSolver({ backend: be });
  // GPU time by phase (only counted on a context created with `timestamps`: benchmarks).
  const gpu = be.context;
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
        gpu.phase("forward");
        try {
          runBlock({ ...ctx, backend: t.backend }, block, xs[s]!, kCache, vCache, 0, hook);
        } catch (e) {
          if (e !== STOP_BLOCK) throw e;
        } finally {
          for (const x of t.live) be.free(x);
        }
      },
      advance(block) {
        gpu.phase("forward");
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
    kind: "webgpu",
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
    group: (inputs) => gpuGroup(solver, inputs),
    close() {
      be.free(kCache);
      be.free(vCache);
      solver.dispose();
    },
  };
}

function gpuGroup(solver: WebGpuSolver, inputs: ReadonlyMap<LinearInput, number>): GroupSolver {
  const hs = new Map<LinearInput, GpuHessian>();
  for (const [input, K] of inputs) hs.set(input, solver.hessian(K));
  let prepared = null as { input: LinearInput; prep: GpuPreparedHessian } | null;
  return {
    // A NaN/Inf input shows in H: prepare reports it, naming the module.
    failed: false,
    add(input, x) {
      solver.context.phase("hessian");
      hs.get(input)!.addTensor(x, 1, x.rows);
      solver.context.phase("forward");
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
      solver.context.phase("report");
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
